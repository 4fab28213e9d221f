// `npm run bench:webhooks`: events delivered per second to a local receiver, beside a bare HTTP POST
// loop to the same receiver in the same run (the floor: what any sender could do with as many
// requests in flight). The receiver runs in a forked child and answers 200 at once.
//   - BENCH_N (5000) events are written to the webhook feed the way the state scripts write them
//     (XADD of the CloudEvent), spread over BENCH_CONVERSATIONS (200) conversations, then the clock
//     runs until the receiver has every delivery: feed → dispatcher → lanes → claim → signed POST → settle;
//   - scenario "1 subscription": in flight at most GATEWAY_WEBHOOK_SUBSCRIPTION_CONCURRENCY (4);
//     the floor loop keeps the same number of POSTs in flight;
//   - scenario "8 subscriptions": BENCH_N / 8 events to 8 subscriptions (BENCH_N deliveries), up to
//     GATEWAY_WORKER_CONCURRENCY (32) in flight; the floor loop keeps 32 in flight.
// The floor POSTs the same body with the same headers (one HMAC each), keep-alive, via fetch as the gateway does.
// REDIS_URL (else an embedded redis-server with AOF as in production); BENCH_JSON=1 prints JSON too.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { signWebhook } from '../src/events/webhookRequest.ts';
import { createRedis } from '../src/redis/connection.ts';
import { benchRedis, numberEnv } from './benchRedis.ts';
import { createBenchTenant, call, startGatewayUnderTest } from './gatewayUnderTest.ts';

class ReceiverProcess {
  private waiting = new Map<string, (n: number) => void>();
  private constructor(private readonly child: ChildProcess, readonly url: string) {
    child.on('message', (m: { type: string; path: string; count: number }) => {
      if (m.type === 'count') { this.waiting.get(m.path)?.(m.count); this.waiting.delete(m.path); }
    });
  }

  static async start(): Promise<ReceiverProcess> {
    const child = fork(fileURLToPath(import.meta.url), ['receiver'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)));
    return new ReceiverProcess(child, `http://127.0.0.1:${port}`);
  }

  count(path: string): Promise<number> {
    return new Promise((resolve) => { this.waiting.set(path, resolve); this.child.send({ type: 'count', path }); });
  }

  /** Resolves when every path has `each` requests; prefixes their counts for the total. */
  async waitFor(paths: string[], each: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const counts = await Promise.all(paths.map((p) => this.count(p)));
      if (counts.every((n) => n >= each)) return;
      if (Date.now() > deadline) throw new Error(`receiver: ${counts.join(', ')} of ${each} each after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  stop(): void { this.child.kill('SIGTERM'); }
}

function envelope(accountId: string, i: number, conversations: number): string {
  const conversationId = `conv_bench${i % conversations}`;
  return JSON.stringify({
    specversion: '1.0', id: `evt_bench${randomBytes(6).toString('hex')}_${i}_r`, source: `/accounts/${accountId}/inboxes/inb_bench`,
    type: 'message.received', time: new Date().toISOString(), subject: conversationId, datacontenttype: 'application/json',
    data: {
      id: `msg_bench${i}`, accountId, inboxId: 'inb_bench', channel: 'webchat', direction: 'inbound', conversationId, contactId: `ct_bench${i % conversations}`,
      externalId: `c${i}`, from: { channelId: `v_bench${i % conversations}`, name: 'Bench visitor' }, to: { channelId: 'inb_bench' },
      sentAt: new Date().toISOString(), receivedAt: new Date().toISOString(), seq: i + 1, content: { type: 'text', text: `benchmark message ${i}` },
    },
  });
}

/** The floor: `count` signed POSTs of the same kind of body, `inFlight` at a time. */
async function postLoop(url: string, count: number, inFlight: number, accountId: string): Promise<number> {
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const bodies = Array.from({ length: count }, (_, i) => envelope(accountId, i, 200));
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < count) {
      const body = bodies[next++]!;
      const id = `evt_floor${next}`;
      const timestamp = Math.floor(Date.now() / 1000);
      const response = await fetch(url, {
        method: 'POST', body, redirect: 'manual', signal: AbortSignal.timeout(10_000),
        headers: { 'content-type': 'application/cloudevents+json; charset=utf-8', 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signWebhook(secret, id, timestamp, body) },
      });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`floor: HTTP ${response.status}`);
    }
  }));
  return count / ((performance.now() - started) / 1000);
}

interface ScenarioResult { scenario: string; deliveries: number; inFlight: number; gatewayPerSecond: number; floorPerSecond: number; ratio: number }

async function main(): Promise<void> {
  const n = numberEnv('BENCH_N', 5000);
  const conversations = numberEnv('BENCH_CONVERSATIONS', 200);
  const redis = await benchRedis('webhooks');
  const receiver = await ReceiverProcess.start();
  const prefix = `bw${randomBytes(3).toString('hex')}`;
  const g = await startGatewayUnderTest(redis.url, prefix);
  const feed = createRedis(redis.url, 'bench-webhooks-feed');
  const results: ScenarioResult[] = [];
  try {
    const scenarios = [
      { name: '1 subscription', subscriptions: 1, inFlight: g.settings.webhookSubscriptionConcurrency },
      { name: '8 subscriptions', subscriptions: 8, inFlight: Math.min(g.settings.workerConcurrency, 8 * g.settings.webhookSubscriptionConcurrency) },
    ];
    for (const [index, scenario] of scenarios.entries()) {
      const tenant = await createBenchTenant(g, 5);
      const paths = Array.from({ length: scenario.subscriptions }, (_, s) => `/s${index}-${s}`);
      for (const path of paths) await call(g.url, 'POST', `/api/v1/accounts/${tenant.accountId}/webhooks`, tenant.apiKey, { url: `${receiver.url}${path}`, events: ['*'] });
      const events = Math.floor(n / scenario.subscriptions);
      // Warm-up: connections, scripts, JIT.
      await postLoop(`${receiver.url}/warm${index}`, 500, scenario.inFlight, tenant.accountId);
      const floorPerSecond = await postLoop(`${receiver.url}/floor${index}`, events * scenario.subscriptions, scenario.inFlight, tenant.accountId);

      const envelopes = Array.from({ length: events }, (_, i) => envelope(tenant.accountId, i, conversations));
      const started = performance.now();
      for (let i = 0; i < envelopes.length; i += 500) {
        const pipeline = feed.pipeline();
        for (const e of envelopes.slice(i, i + 500)) pipeline.xadd(g.gateway.keys.events, '*', 'e', e, 'acc', tenant.accountId);
        await pipeline.exec();
      }
      await receiver.waitFor(paths, events, 600_000);
      const gatewayPerSecond = (events * scenario.subscriptions) / ((performance.now() - started) / 1000);
      results.push({ scenario: scenario.name, deliveries: events * scenario.subscriptions, inFlight: scenario.inFlight, gatewayPerSecond, floorPerSecond, ratio: gatewayPerSecond / floorPerSecond });
    }
  } finally {
    await g.gateway.stop();
    feed.disconnect();
    receiver.stop();
    await redis.stop();
  }
  console.log(`bench:webhooks on ${cpus().length} cores (load ${loadavg().map((l) => l.toFixed(2)).join(' ')}), ${redis.description}, ${conversations} conversations`);
  for (const r of results) {
    console.log(`  ${r.scenario.padEnd(16)} ${r.deliveries} deliveries, ${r.inFlight} in flight: gateway ${r.gatewayPerSecond.toFixed(0)}/s, bare POST loop ${r.floorPerSecond.toFixed(0)}/s, ratio ${r.ratio.toFixed(2)}`);
  }
  if (process.env.BENCH_JSON === '1') console.log(JSON.stringify(results));
}

// The receiver (a forked child): counts requests per path, answers 200 with a short body.
function runReceiver(): void {
  const counts = new Map<string, number>();
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const path = (request.url ?? '/').split('?')[0]!;
      counts.set(path, (counts.get(path) ?? 0) + 1);
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send!({ type: 'listening', port: (server.address() as AddressInfo).port }));
  process.on('message', (message: { type: string; path: string }) => {
    if (message.type === 'count') process.send!({ type: 'count', path: message.path, count: counts.get(message.path) ?? 0 });
  });
}

if (process.argv[2] === 'receiver') runReceiver();
else await main();
