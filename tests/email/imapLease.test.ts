// One watcher per mailbox across worker processes: a second process waits while the lease is held,
// takes the mailbox over when its holder stops, and after the ttl when its holder died silently.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript } from '../../src/commands/index.ts';
import { ImapWatchers } from '../../src/email/imapWatchers.ts';
import { createLogger } from '../../src/logger.ts';
import { startDovecot, type DovecotServer } from '../support/dovecotServer.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';
import { waitFor } from './support.ts';

describe('IMAP watcher leases', () => {
  let dovecot: DovecotServer;
  let t: TestGateway;
  let tenant: Tenant;
  let inboxId: string;

  beforeAll(async () => {
    dovecot = await startDovecot();
    // A web-only gateway: the test's own ImapWatchers stand for the worker processes.
    t = await startTestGateway({}, 'web');
    tenant = await createTenant(t);
    const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey, body: { type: 'email', name: 'Support', settings: {}, credentials: { imap: dovecot.imap(), fromAddress: 'support@shop.test' } },
    });
    inboxId = r.body.id;
  });
  afterAll(async () => {
    await t?.stop();
    await dovecot?.stop();
  });

  const workers = () => {
    const { redis, keys, accounts, inboxes } = t.gateway.services;
    return new ImapWatchers({ redis, keys, accounts, inboxes, log: createLogger('silent'), accept: async () => undefined, pollMs: 500, backoffMs: 50, allowPrivateTargets: true }, { leaseMs: 1000, scanMs: 100 });
  };

  it('keeps one watcher per mailbox and hands it over when the holder stops or dies', async () => {
    const a = workers();
    const b = workers();
    await a.start();
    await b.start();
    expect(a.watching).toEqual([inboxId]);
    await new Promise((r) => setTimeout(r, 1500)); // several renewals
    expect(b.watching).toEqual([]);
    await a.stop();
    await waitFor(async () => b.watching.includes(inboxId), 5000, 'b to take over');

    // b dies without a word (its process is gone): the lease is left to expire, then a third takes it.
    await b.stop();
    const { redis, keys } = t.gateway.services;
    await redis.set(keys.imapLease(inboxId), 'dead-process', 'PX', 800);
    const c = workers();
    await c.start();
    expect(c.watching).toEqual([]);
    await waitFor(async () => c.watching.includes(inboxId), 5000, 'c to take over after the ttl');
    expect(await redis.get(keys.imapLease(inboxId))).toBe(c.holderId);
    await c.stop();
    expect(await redis.get(keys.imapLease(inboxId))).toBeNull();
  });

  it('keeps watching when another inbox\'s credentials cannot be opened', async () => {
    const { redis, keys, accounts, inboxes } = t.gateway.services;
    const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey, body: { type: 'email', name: 'Broken', settings: {}, credentials: { imap: dovecot.imap(), fromAddress: 'broken@shop.test' } },
    });
    const brokenId = r.body.id as string;
    const broken = Object.create(inboxes) as typeof inboxes;
    broken.credentials = ((inbox: { id: string }) => {
      if (inbox.id === brokenId) throw new Error('secretBox: cannot open');
      return inboxes.credentials(inbox as never);
    }) as typeof inboxes.credentials;
    const w = new ImapWatchers({ redis, keys, accounts, inboxes: broken, log: createLogger('silent'), accept: async () => undefined, pollMs: 500, backoffMs: 50, allowPrivateTargets: true }, { leaseMs: 1000, scanMs: 100 });
    await w.start();
    await new Promise((res) => setTimeout(res, 1500)); // past the ttl: the good lease was renewed
    expect(w.watching).toEqual([inboxId]);
    expect(await redis.get(keys.imapLease(inboxId))).toBe(w.holderId);
    expect(await redis.get(keys.imapLease(brokenId))).toBeNull();
    await w.stop();
    await t.api('DELETE', `/api/v1/accounts/${tenant.accountId}/inboxes/${brokenId}`, { key: tenant.apiKey });
  });

  it('refuses a cursor advance from a stale mailbox/UIDVALIDITY', async () => {
    const { redis } = t.gateway.services;
    const key = 'test:imapCursor:stale';
    expect(await runScript(redis, 'advanceImapCursor', [key], ['INBOX', '2', 0, '1'])).toBe(0);
    expect(await runScript(redis, 'advanceImapCursor', [key], ['INBOX', '2', 5, '0'])).toBe(5);
    expect(await runScript(redis, 'advanceImapCursor', [key], ['INBOX', '1', 9, '0'])).toBe(-1);
    expect(await runScript(redis, 'advanceImapCursor', [key], ['Other', '2', 9, '0'])).toBe(-1);
    expect(await redis.hgetall(key)).toEqual({ mailbox: 'INBOX', uidValidity: '2', lastUid: '5' });
    await redis.del(key);
  });
});
