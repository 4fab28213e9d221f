// `npm run bench:email`: mails/s from IMAP (a local dovecot started here) into the pipeline, beside a
// floor measured in the same run on the same mailbox: the bare imapflow fetch of the same mails (SEARCH
// past a UID, FETCH the sources in the same batches), which the watcher can only be slower than.
//   - floor: imapflow alone fetches all BENCH_N (2000) mails;
//   - queued: the gateway's IMAP watcher (role all, in this process) reads, parses, stores the raw mail
//     and attachments and queues each mail (cursor at the last UID);
//   - stored: every mail stored by the ingest worker (threaded, in its conversation, routed).
// Every mail has its own sender and subject (a new conversation each, the heavier case). The run checks
// that each mail is stored exactly once. REDIS_URL (else an embedded redis-server with AOF), BENCH_JSON=1.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { createGateway } from '../src/gateway.ts';
import { createLogger } from '../src/logger.ts';
import { keyDigest } from '../src/ids.ts';
import { startDovecot, type DovecotServer } from '../tests/support/dovecotServer.ts';
import { benchRedis, numberEnv } from './benchRedis.ts';
import { benchSettings, call } from './gatewayUnderTest.ts';
import { randomBytes } from 'node:crypto';

const count = numberEnv('BENCH_N', 2000);

function mail(i: number): string {
  return [
    `From: Customer ${i} <customer${i}@customer.test>`, 'To: support@shop.test', `Subject: Question number ${i}`,
    `Date: ${new Date().toUTCString()}`, `Message-ID: <bench-${i}@customer.test>`, 'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="b"', '', '--b', 'Content-Type: text/plain; charset=utf-8', '',
    `Hello, this is mail ${i}. 我的订单还没有到。`, '', '--', 'Customer', '--b', 'Content-Type: text/html; charset=utf-8', '',
    `<p>Hello, this is mail <b>${i}</b>. 我的订单还没有到。</p>`, '--b--', '',
  ].join('\r\n');
}

async function client(d: DovecotServer): Promise<ImapFlow> {
  const c = new ImapFlow({ host: d.host, port: d.port, secure: false, auth: { user: d.user, pass: d.pass }, logger: false });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

async function floor(d: DovecotServer): Promise<number> {
  const c = await client(d);
  await c.mailboxOpen('INBOX');
  const started = performance.now();
  let lastUid = 0;
  let fetched = 0;
  for (;;) {
    const uids = ((await c.search({ uid: `${lastUid + 1}:*` }, { uid: true })) || []).filter((u) => u > lastUid).sort((a, b) => a - b).slice(0, 25);
    if (!uids.length) break;
    const messages = await c.fetchAll(uids.join(','), { uid: true, source: true }, { uid: true });
    fetched += messages.length;
    lastUid = uids[uids.length - 1]!;
  }
  const seconds = (performance.now() - started) / 1000;
  await c.logout();
  if (fetched !== count) throw new Error(`floor fetched ${fetched} of ${count}`);
  return seconds;
}

async function main() {
  const redis = await benchRedis('email');
  const dovecot = await startDovecot();
  const dataDir = mkdtempSync(join(tmpdir(), 'gateway-bench-email-data-'));
  try {
    const appender = await client(dovecot);
    const appendStarted = performance.now();
    for (let i = 0; i < count; i++) await appender.append('INBOX', mail(i));
    const appendSeconds = (performance.now() - appendStarted) / 1000;
    await appender.logout();

    const floorSeconds = await floor(dovecot);

    const prefix = `bemail${randomBytes(3).toString('hex')}`;
    // The bench's Dovecot listens on loopback, a private address the gateway refuses by default.
    const settings = { ...benchSettings(prefix), dataDir, providerPrivateTargets: 'allow' as const };
    const gateway = await createGateway({
      settings, redisUrl: redis.url, secretKey: randomBytes(32).toString('base64'), log: createLogger('silent'), role: 'all',
      imap: { scanMs: 50, leaseMs: 30_000, pollMs: 60_000 },
    });
    await gateway.start();
    const account = await call(gateway.url, 'POST', '/api/v1/accounts', settings.adminKey!, { name: 'Bench' });
    const { redis: r, keys } = gateway.services;
    const started = performance.now();
    const cpuStart = process.cpuUsage();
    const inbox = await call(gateway.url, 'POST', `/api/v1/accounts/${account.account.id}/inboxes`, account.key, {
      type: 'email', name: 'Support', settings: {}, credentials: { imap: dovecot.imap(), fromAddress: 'support@shop.test' },
    });
    let queuedSeconds = 0;
    for (;;) {
      const lastUid = Number(await r.hget(keys.imapCursor(inbox.id), 'lastUid') ?? 0);
      if (!queuedSeconds && lastUid >= count) queuedSeconds = (performance.now() - started) / 1000;
      const counts = await gateway.queues.inbound.getJobCounts('waiting', 'active', 'delayed');
      if (queuedSeconds && counts.waiting + counts.active + counts.delayed === 0) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    const storedSeconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    const processCore = (cpu.user + cpu.system) / 1e6 / storedSeconds;
    // Exactly once: every Message-ID has its stored message, and the inbox's conversations hold count messages.
    const pipeline = r.pipeline();
    for (let i = 0; i < count; i++) pipeline.get(keys.messageDedup(inbox.id, keyDigest(`<bench-${i}@customer.test>`)));
    const stored = ((await pipeline.exec()) ?? []).filter(([, v]) => v).length;
    const conversations = await r.zrange(keys.accountIndex(account.account.id, 'conversations'), '0', '-1');
    let messages = 0;
    for (const id of conversations) messages += await r.zcard(keys.conversationMessages(id));
    await gateway.stop();
    if (stored !== count || messages !== count) throw new Error(`stored ${stored} ids and ${messages} messages for ${count} mails`);

    const result = {
      mails: count, redis: redis.description,
      appendPerSecond: count / appendSeconds,
      floorImapFetchPerSecond: count / floorSeconds,
      gatewayQueuedPerSecond: count / queuedSeconds,
      gatewayStoredPerSecond: count / storedSeconds,
      queuedVsFloor: floorSeconds / queuedSeconds,
      storedVsFloor: floorSeconds / storedSeconds,
      gatewayProcessCore: processCore,
      cpuMsPerMail: ((cpu.user + cpu.system) / 1000) / count,
      loadAverage: loadavg()[0],
    };
    const f = (n: number) => n.toFixed(0).padStart(7);
    console.log(`bench:email: ${count} mails (multipart/alternative, UTF-8 Chinese text), dovecot ${dovecot.port} on loopback, ${redis.description}`);
    console.log(`  append (imapflow APPEND, setup)          ${f(result.appendPerSecond)} mails/s`);
    console.log(`  floor: bare imapflow SEARCH+FETCH         ${f(result.floorImapFetchPerSecond)} mails/s`);
    console.log(`  gateway: IMAP -> parsed -> queued         ${f(result.gatewayQueuedPerSecond)} mails/s  (${(result.queuedVsFloor * 100).toFixed(0)}% of the floor)`);
    console.log(`  gateway: IMAP -> stored in conversations  ${f(result.gatewayStoredPerSecond)} mails/s  (${(result.storedVsFloor * 100).toFixed(0)}% of the floor)`);
    console.log(`  gateway process: ${result.gatewayProcessCore.toFixed(2)} of a core, ${result.cpuMsPerMail.toFixed(1)} ms CPU per mail (parse, store, ingest, route); load average ${result.loadAverage.toFixed(1)} on ${cpus().length} cores`);
    console.log(`  exactly once: ${stored} Message-IDs stored, ${messages} messages in ${conversations.length} conversations`);
    if (process.env.BENCH_JSON === '1') console.log(JSON.stringify(result));
  } finally {
    await dovecot.stop();
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (error) => { console.error(error); process.exit(1); });
