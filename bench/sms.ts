// `npm run bench:sms`: inbound SMS webhooks per second for each provider (Twilio signed form posts,
// Aliyun and Tencent JSON with the URL token, Vonage signed forms) through POST /sms/{inboxId}/inbound,
// beside the floor the WeChat bench uses, measured in the same run on the same Redis: a bare Koa app
// that reads the body, parses it (JSON or form) and adds it to a BullMQ queue (jobId from the
// provider's id, the gateway's inbound job options) before answering. Both answer only once queued.
//   BENCH_N (5000) fresh messages per provider, round and server; BENCH_ROUNDS (3), the two servers
//   taking turns (the first alternates); BENCH_CONCURRENCY (32) requests in flight from a forked client
//   (undici, keep-alive). The median round by ratio is reported. Gateway role web: no consumer runs.
// After each burst the queue must hold exactly the distinct messages sent, and every answer be a 2xx.
// REDIS_URL (else an embedded redis-server with AOF as in production); BENCH_JSON=1 prints JSON too.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import Koa from 'koa';
import getRawBody from 'raw-body';
import { Pool } from 'undici';
import { formFields } from '../adapters/sms/smsProvider.ts';
import { twilioSignature } from '../adapters/sms/twilio.ts';
import { vonageSignature } from '../adapters/sms/vonage.ts';
import { createGateway, type Gateway } from '../src/gateway.ts';
import { createLogger } from '../src/logger.ts';
import { jobOptions } from '../src/queues.ts';
import { createRedis } from '../src/redis/connection.ts';
import { benchRedis, numberEnv } from './benchRedis.ts';
import { benchSettings, call } from './gatewayUnderTest.ts';

const providers = ['twilio', 'aliyun', 'tencent', 'vonage'] as const;
type Provider = (typeof providers)[number];
type Target = 'gateway' | 'floor';
const credentials: Record<Provider, Record<string, string>> = {
  twilio: { accountSid: 'ACbench', authToken: 'bench-twilio-token', from: '+15005550006' },
  aliyun: { accessKeyId: 'k', accessKeySecret: 's', signName: '测试', templateCode: 'SMS_1' },
  tencent: { secretId: 'k', secretKey: 's', sdkAppId: '1400000001', signName: '测试', templateId: '1' },
  vonage: { apiKey: 'k', apiSecret: 's', from: 'Shop', signatureSecret: 'bench-vonage-secret', signatureMethod: 'sha256' },
};

interface Push { path: string; contentType: string; headers: Record<string, string>; body: string }
interface BurstResult { sent: number; ok: number; bad: Record<string, number>; seconds: number; perSecond: number }
type ClientCommand = { type: 'burst'; id: number; origin: string; pushes: Push[]; concurrency: number };

// ---------------------------------------------------------------------------------------------------
// The load client (a forked child): sends the pushes it is given and counts the answers.

async function clientMain(): Promise<void> {
  const pools = new Map<string, Pool>();
  process.on('message', async (command: ClientCommand) => {
    let pool = pools.get(command.origin);
    if (!pool) pools.set(command.origin, pool = new Pool(command.origin, { connections: command.concurrency, pipelining: 1 }));
    const result: BurstResult = { sent: 0, ok: 0, bad: {}, seconds: 0, perSecond: 0 };
    let next = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: command.concurrency }, async () => {
      while (next < command.pushes.length) {
        const push = command.pushes[next++]!;
        result.sent += 1;
        try {
          const response = await pool!.request({ method: 'POST', path: push.path, headers: { 'content-type': push.contentType, ...push.headers }, body: push.body });
          const text = await response.body.text();
          if (response.statusCode >= 200 && response.statusCode < 300) result.ok += 1;
          else result.bad[`${response.statusCode} ${text.slice(0, 80)}`] = (result.bad[`${response.statusCode} ${text.slice(0, 80)}`] ?? 0) + 1;
        } catch (error) {
          result.bad[`error ${(error as Error).message}`] = (result.bad[`error ${(error as Error).message}`] ?? 0) + 1;
        }
      }
    }));
    result.seconds = (performance.now() - started) / 1000;
    result.perSecond = result.sent / result.seconds;
    process.send!({ id: command.id, result });
  });
}

class LoadClient {
  private readonly child = fork(new URL(import.meta.url).pathname, ['--client'], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  private id = 0;
  private readonly waiting = new Map<number, (r: BurstResult) => void>();
  constructor() {
    this.child.on('message', (m: { id: number; result: BurstResult }) => this.waiting.get(m.id)?.(m.result));
  }
  burst(origin: string, pushes: Push[], concurrency: number): Promise<BurstResult> {
    const id = ++this.id;
    return new Promise((resolve) => { this.waiting.set(id, resolve); this.child.send({ type: 'burst', id, origin, pushes, concurrency } satisfies ClientCommand); });
  }
  stop(): void { this.child.kill(); }
}

// ---------------------------------------------------------------------------------------------------
// The floor: Koa, the body read and parsed, one BullMQ add, then the answer.

async function startFloor(queue: Queue): Promise<{ server: Server; origin: string }> {
  const app = new Koa();
  app.use(async (ctx) => {
    const raw = (await getRawBody(ctx.req, { limit: 1024 * 1024 })).toString('utf8');
    const parsed = ctx.request.type === 'application/json' ? JSON.parse(raw) : Object.fromEntries(new URLSearchParams(raw));
    const item = Array.isArray(parsed) ? parsed[0] : parsed;
    const id = String(item.MessageSid ?? item.sequence_id ?? item.messageId ?? `${item.mobile}-${item.time}`);
    await queue.add('inbound', item, { ...jobOptions.inbound, jobId: `sms_${id}` });
    ctx.status = 200;
    ctx.body = 'ok';
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** N fresh pushes of one provider, as it sends them (signed or with the URL's token). */
function pushesFor(provider: Provider, set: string, n: number, url: { path: string; signingBase: string }): Push[] {
  const pushes: Push[] = [];
  for (let i = 0; i < n; i += 1) {
    const phone = `1390000${String(i % 10000).padStart(4, '0')}`;
    const text = `你好，我的订单 ${100000 + i} 什么时候发货? message ${i}`;
    const id = `${set}${String(i).padStart(7, '0')}`;
    if (provider === 'twilio') {
      const body = new URLSearchParams({ MessageSid: `SM${id}`, AccountSid: 'ACbench', From: `+1415${String(i % 10_000_000).padStart(7, '0')}`, To: '+15005550006', Body: text, NumMedia: '0' }).toString();
      const signature = twilioSignature(credentials.twilio.authToken!, `${url.signingBase}${url.path}`, formFields(Buffer.from(body)));
      pushes.push({ path: url.path, contentType: 'application/x-www-form-urlencoded', headers: { 'x-twilio-signature': signature }, body });
    } else if (provider === 'aliyun') {
      pushes.push({ path: url.path, contentType: 'application/json', headers: {}, body: JSON.stringify([{ phone_number: phone, content: text, send_time: '2024-05-01 12:00:00', dest_code: '01', sequence_id: Number(id.replace(/\D/g, '')) }]) });
    } else if (provider === 'tencent') {
      pushes.push({ path: url.path, contentType: 'application/json', headers: {}, body: JSON.stringify({ extend: '', mobile: phone, nationcode: '86', sign: '测试', text, time: 1714036504 + i }) });
    } else {
      const fields = { msisdn: `44770090${String(i % 10000).padStart(4, '0')}`, to: '447700900000', messageId: `0A${id}`, text, type: 'text', 'message-timestamp': '2024-05-01 12:00:00', timestamp: String(Math.floor(Date.now() / 1000)), nonce: id };
      const body = new URLSearchParams({ ...fields, sig: vonageSignature(fields, credentials.vonage.signatureSecret!, 'sha256') }).toString();
      pushes.push({ path: url.path, contentType: 'application/x-www-form-urlencoded', headers: {}, body });
    }
  }
  return pushes;
}

async function main(): Promise<void> {
  const n = Math.round(numberEnv('BENCH_N', 5000));
  const roundCount = Math.round(numberEnv('BENCH_ROUNDS', 3));
  const concurrency = Math.round(numberEnv('BENCH_CONCURRENCY', 32));
  const redis = await benchRedis('sms');
  const run = randomBytes(3).toString('hex');
  const gatewayPrefix = `bench-sms-gw-${run}`;
  const floorPrefix = `bench-sms-floor-${run}`;
  const observer = createRedis(redis.url, 'bench-observer');
  const floorConnection = createRedis(redis.url, 'bench-sms-floor', { autoPipelining: true });
  const floorQueue = new Queue('inbound', { connection: floorConnection, prefix: `${floorPrefix}:q` });
  const queues: Record<Target, Queue> = {
    gateway: new Queue('inbound', { connection: observer, prefix: `${gatewayPrefix}:q` }),
    floor: new Queue('inbound', { connection: observer, prefix: `${floorPrefix}:q` }),
  };
  let gateway: Gateway | undefined;
  let floor: { server: Server; origin: string } | undefined;
  const client = new LoadClient();
  const problems: string[] = [];
  try {
    const adminKey = `admin-${randomBytes(16).toString('hex')}`;
    const settings = benchSettings(gatewayPrefix, adminKey);
    gateway = await createGateway({ settings, redisUrl: redis.url, secretKey: randomBytes(32).toString('base64'), log: createLogger(settings.logLevel), role: 'web' });
    await gateway.start();
    floor = await startFloor(floorQueue);
    const account = await call(gateway.url, 'POST', '/api/v1/accounts', adminKey, { name: 'Bench SMS shop' });
    const paths = {} as Record<Provider, string>;
    for (const provider of providers) {
      const inbox = await call(gateway.url, 'POST', `/api/v1/accounts/${account.account.id}/inboxes`, account.key, {
        type: 'sms', name: `Bench ${provider}`, credentials: credentials[provider], settings: { provider, defaultRegion: provider === 'aliyun' || provider === 'tencent' ? 'CN' : 'US' },
      });
      paths[provider] = new URL(inbox.urls.inboundUrl).pathname + new URL(inbox.urls.inboundUrl).search;
    }
    const origins: Record<Target, string> = { gateway: gateway.url, floor: floor.origin };
    const burst = async (target: Target, provider: Provider, set: string, count: number) => {
      const path = target === 'gateway' ? paths[provider] : `/floor/${provider}`;
      const pushes = pushesFor(provider, `${set}${target[0]}`, count, { path, signingBase: gateway!.publicUrl });
      const result = await client.burst(origins[target], pushes, concurrency);
      const found = await queues[target].getJobCountByTypes('waiting', 'delayed', 'prioritized');
      if (found !== count || result.ok !== count) problems.push(`${target} ${provider} ${set}: ${result.ok}/${count} ok, ${found} jobs ${JSON.stringify(result.bad)}`);
      await queues[target].drain(true);
      return result;
    };

    console.log(`bench:sms  ${n} pushes per provider, round and server; ${roundCount} rounds; ${concurrency} in flight; ${redis.description}; gateway role web`);
    console.log('floor: Koa + body parse + BullMQ add (the WeChat bench floor), same Redis, same run. The machine is shared: figures vary run to run.\n');
    const report: Record<string, unknown> = {};
    for (const provider of providers) {
      await burst('floor', provider, 'w', 500);
      await burst('gateway', provider, 'w', 500);
      const rounds: { gateway: BurstResult; floor: BurstResult }[] = [];
      for (let r = 0; r < roundCount; r += 1) {
        const order: Target[] = r % 2 ? ['gateway', 'floor'] : ['floor', 'gateway'];
        const round = {} as { gateway: BurstResult; floor: BurstResult };
        for (const target of order) round[target] = await burst(target, provider, `r${r}`, n);
        rounds.push(round);
      }
      const ratio = (x: { gateway: BurstResult; floor: BurstResult }) => x.gateway.perSecond / x.floor.perSecond;
      const median = [...rounds].sort((a, b) => ratio(a) - ratio(b))[Math.floor(rounds.length / 2)]!;
      report[provider] = { gatewayPerSecond: Math.round(median.gateway.perSecond), floorPerSecond: Math.round(median.floor.perSecond), ratio: Number(ratio(median).toFixed(2)),
        rounds: rounds.map((x) => ({ gateway: Math.round(x.gateway.perSecond), floor: Math.round(x.floor.perSecond) })) };
      console.log(`${provider.padEnd(8)} gateway ${String(Math.round(median.gateway.perSecond)).padStart(6)} webhooks/s   floor ${String(Math.round(median.floor.perSecond)).padStart(6)}/s   ratio ${ratio(median).toFixed(2)}  (rounds ${rounds.map((x) => `${Math.round(x.gateway.perSecond)}/${Math.round(x.floor.perSecond)}`).join(', ')})`);
    }
    console.log(problems.length ? `\nCHECKS FAILED:\n  ${problems.join('\n  ')}` : '\nchecks: every answer 2xx, every queue held exactly the distinct messages sent');
    if (process.env.BENCH_JSON === '1') console.log(JSON.stringify({ n, roundCount, concurrency, redis: redis.description, providers: report, problems }));
    if (problems.length) process.exitCode = 1;
  } finally {
    client.stop();
    floor?.server.close();
    await gateway?.stop();
    await floorQueue.close();
    await floorConnection.quit();
    await Promise.all(Object.values(queues).map((q) => q.close()));
    await observer.quit();
    await redis.stop();
  }
}

if (process.argv.includes('--client')) await clientMain();
else await main();
