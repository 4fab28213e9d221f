// Acceptance: a mail appended to a real dovecot mailbox reaches an agent; the agent's reply reaches a
// real SMTP server threaded (In-Reply-To, References, our Message-ID, Re: subject, plus-addressed
// Reply-To); the customer's answer joins the same conversation; a bounce marks the reply failed.
import { readFileSync } from 'node:fs';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../support/dovecotServer.ts';
import { startSmtpServer, type TestSmtpServer } from '../support/smtpServer.ts';
import { createTenant, startTestGateway, TestSocket, wsUrl, type Tenant, type TestGateway } from '../support/testGateway.ts';
import { imapClient, rawMail, waitFor } from './support.ts';

describe('email through the whole pipeline (dovecot in, smtp-server out)', () => {
  let dovecot: DovecotServer;
  let smtp: TestSmtpServer;
  let t: TestGateway;
  let tenant: Tenant;
  let inboxId: string;
  let imap: ImapFlow;

  beforeAll(async () => {
    dovecot = await startDovecot();
    smtp = await startSmtpServer();
    t = await startTestGateway({}, 'all', { imap: { leaseMs: 3000, scanMs: 200, pollMs: 1000, backoffMs: 100 } });
    tenant = await createTenant(t);
    const inbox = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey,
      body: {
        type: 'email', name: 'Shop support', settings: {},
        credentials: {
          imap: dovecot.imap(), smtp: { host: '127.0.0.1', port: smtp.port, secure: false, user: '', pass: '' }, fromAddress: 'support@shop.test',
        },
      },
    });
    expect(inbox.status).toBe(201);
    inboxId = inbox.body.id;
    imap = await imapClient(dovecot);
  });
  afterAll(async () => {
    await imap?.logout().catch(() => undefined);
    await t?.stop();
    await smtp?.stop();
    await dovecot?.stop();
  });

  const conversations = async () => (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations?limit=100`, { key: tenant.apiKey })).body.items
    .filter((c: any) => c.inboxId === inboxId);
  const history = async (id: string) => (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${id}/messages`, { key: tenant.apiKey })).body.items;

  it('delivers a mail to the agent, threads the reply, and joins the answer to the same conversation', async () => {
    const agent = await TestSocket.open(wsUrl(t.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${tenant.agentToken}` } });
    await agent.next((f) => f.type === 'hello');
    await imap.append('INBOX', rawMail({
      from: 'Chen Wei <chen@customer.test>', subject: 'Order 42 has not arrived', messageId: '<m1@customer.test>',
      text: 'Hello, my order 42 has not arrived.\r\n\r\n--\r\nChen Wei',
    }));
    const assigned = await agent.next((f) => f.type === 'event' && f.event.type === 'conversation.assigned', 20_000);
    const conversationId = assigned.event.subject as string;
    const [first] = await history(conversationId);
    expect(first).toMatchObject({ channel: 'email', direction: 'inbound', externalId: '<m1@customer.test>', from: { channelId: 'chen@customer.test', name: 'Chen Wei' } });
    expect(first.content.subject).toBe('Order 42 has not arrived');
    expect(first.content.text).toContain('my order 42 has not arrived');
    expect(first.content.attachments.map((a: any) => a.name)).toEqual(['original.eml']);

    const reply = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/messages`, {
      key: tenant.apiKey, body: { text: 'It left our warehouse today.' },
    });
    expect(reply.status).toBe(202);
    const sent = await smtp.nth(1);
    expect(sent.envelope.to).toEqual(['chen@customer.test']);
    expect(sent.parsed.subject).toBe('Re: Order 42 has not arrived');
    expect(sent.parsed.inReplyTo).toBe('<m1@customer.test>');
    expect([sent.parsed.references].flat()).toEqual(['<m1@customer.test>']);
    const ourId = sent.parsed.messageId!;
    expect(ourId).toMatch(new RegExp(`^<${conversationId}\\.msg_[a-z0-9]+@shop\\.test>$`));
    expect(sent.parsed.replyTo?.value[0]?.address).toBe(`support+${conversationId}@shop.test`);
    expect(sent.parsed.text?.trim()).toBe('It left our warehouse today.');
    await waitFor(async () => (await history(conversationId)).find((m: any) => m.direction === 'outbound' && m.status === 'sent'), 10_000, 'sent status');

    // The customer's client answers with a slightly different subject and only In-Reply-To (no References).
    await imap.append('INBOX', rawMail({
      from: 'chen@customer.test', subject: 'RE: Order 42 has not arrived!', messageId: '<m2@customer.test>', inReplyTo: ourId,
      text: 'Thanks!\r\n\r\nOn Tue, support wrote:\r\n> It left our warehouse today.',
    }));
    const items = await waitFor(async () => { const h = await history(conversationId); return h.length === 3 && h; }, 20_000, 'the answer');
    expect(items.map((m: any) => [m.direction, m.externalId])).toEqual([['inbound', '<m1@customer.test>'], ['outbound', ourId], ['inbound', '<m2@customer.test>']]);
    expect(items[2].content.text).toBe('Thanks!');
    expect(await conversations()).toHaveLength(1);

    // A second reply threads under the newest mail, with the whole chain in References.
    await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}/messages`, { key: tenant.apiKey, body: { text: 'You are welcome.' } });
    const second = await smtp.nth(2);
    expect(second.parsed.inReplyTo).toBe('<m2@customer.test>');
    expect([second.parsed.references].flat()).toEqual(['<m1@customer.test>', ourId, '<m2@customer.test>']);
    agent.close();
  });

  it('turns a bounce (DSN) of a reply into message.failed', async () => {
    const before = smtp.mails.length;
    await imap.append('INBOX', rawMail({ from: 'bob@customer.test', subject: 'Where is my refund', messageId: '<b1@customer.test>' }));
    const refund = await waitFor(async () => {
      for (const c of await conversations()) if ((await history(c.id))[0]?.externalId === '<b1@customer.test>') return c;
      return undefined;
    }, 20_000, 'the refund conversation');
    await t.api('POST', `/api/v1/accounts/${tenant.accountId}/conversations/${refund.id}/messages`, { key: tenant.apiKey, body: { text: 'Refunded.' } });
    const sent = await smtp.nth(before + 1);
    const bounce = readFileSync(new URL('../fixtures/email/dsn-postfix-bounce.eml', import.meta.url), 'utf8')
      .replace('<gw.msg_pqr678@shop.example>', sent.parsed.messageId!);
    await imap.append('INBOX', bounce);
    const failed = await waitFor(async () => (await history(refund.id)).find((m: any) => m.direction === 'outbound' && m.status === 'failed'), 20_000, 'failed status');
    expect(failed.error.code).toBe('bounced_5.1.1');
    // The bounce itself opened no conversation.
    for (const c of await conversations()) expect((await history(c.id)).some((m: any) => m.from.channelId.startsWith('mailer-daemon'))).toBe(false);
  });
});
