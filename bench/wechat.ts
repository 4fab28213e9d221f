// `npm run bench:wechat`: the WeChat server URL in safe mode (POST /wechat/{inboxId}?…&encrypt_type=aes)
// beside the npm package `wechat` (node-webot) receiving the same messages and adding each to a BullMQ
// queue, in the same run, on the same Redis. Both answer only once the message is queued: the gateway
// `success` after its queue add, the package `res.reply('')` (its empty ack) after the add.
//   - throughput: BENCH_ROUNDS (5) rounds of BENCH_N (10000) fresh messages from BENCH_OPENIDS (1000)
//     OpenIDs at BENCH_CONCURRENCY (32) requests in flight; the two servers take turns (the first one
//     alternates) and the median round by ratio is the verdict;
//   - ack latency: BENCH_RATE (1000) req/s for BENCH_SECONDS (10) s, open loop, timed from each request's
//     scheduled send (a stall delays everything behind it, as it would for WeChat).
// Both servers run in this process with role web (nothing consumes either queue during the measurement:
// consumers would only compete for the CPU); the load comes from a forked client (undici, keep-alive).
// Goals (issue 4): gateway ≥ 1.2× the package's requests/s; gateway p99 ack ≤ 25 ms at 1,000 req/s.
// After every phase both queues must hold exactly the distinct messages sent (WeChat retries of 200
// warm-up messages must not add a job), and every answer must be a 200 with the expected ack.
// REDIS_URL (else an embedded redis-server with AOF as in production), BENCH_JSON=1 prints JSON too,
// BENCH_CPU_PROF=dir writes a CPU profile of each server taking one more (unmeasured) burst of BENCH_N.
import { fork } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Pool } from 'undici';
import { encryptWechatMessage, wechatSignature } from '../adapters/wechat/wechatCrypto.ts';
import { createGateway, type Gateway } from '../src/gateway.ts';
import { createLogger } from '../src/logger.ts';
import { jobOptions } from '../src/queues.ts';
import { createRedis } from '../src/redis/connection.ts';
import { benchRedis, numberEnv } from './benchRedis.ts';
import { benchSettings, call } from './gatewayUnderTest.ts';
import { redisCpuSeconds, redisStalls, startCpuProfile, summarizeLatency, type LatencySummary, type RedisStalls } from './stats.ts';

const throughputGoal = 1.2;
const p99GoalMs = 25;
const warmupMessages = 1000;
const retriedMessages = 200;
const token = 'bench-wechat-token';
const appId = 'wx5823bf96d3bd56c7';
const encodingAESKey = 'jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C';

type Target = 'gateway' | 'package';
/** What each server answers once the message is queued. */
const expectedAck: Record<Target, string> = { gateway: 'success', package: '' };

// ---------------------------------------------------------------------------------------------------
// The load client (a forked child): builds every signed, encrypted push once, then sends what it is told.

interface ClientConfig {
  urls: Record<Target, { origin: string; path: string }>;
  run: string; openIds: number; concurrency: number;
  /** Message sets by name and size: every set has its own MsgIds; both servers get the same set. */
  sets: [string, number][];
}
interface SendOutcome { sent: number; ok: number; bad: Record<string, number> }
interface BurstResult extends SendOutcome { target: Target; set: string; seconds: number; perSecond: number; clientCore: number; latency: LatencySummary }
interface RateResult extends SendOutcome {
  target: Target; set: string; seconds: number; targetRate: number; sendRate: number; clientCore: number; clientLoopDelayMaxMs: number;
  /** From the scheduled send: what WeChat would see. */
  fromScheduled: LatencySummary;
  /** From the actual write: the server's answer alone. */
  fromSend: LatencySummary;
  /** Answers slower than the goal, counted by the second of the phase they were scheduled in. */
  slowBySecond: Record<string, number>;
}
type ClientCommand =
  | { type: 'build'; config: ClientConfig }
  | { type: 'burst'; id: number; target: Target; set: string; limit?: number }
  | { type: 'rate'; id: number; target: Target; set: string; rate: number };
type ClientReply =
  | { type: 'built'; messages: number; ms: number }
  | { type: 'burst'; id: number; result: BurstResult }
  | { type: 'rate'; id: number; result: RateResult }
  | { type: 'failed'; error: string };

interface Push { query: string; body: string }

function buildSets(config: ClientConfig): Map<string, Push[]> {
  const sets = new Map<string, Push[]>();
  let index = 0;
  const runDigits = String(parseInt(config.run, 16) % 1e8).padStart(8, '0');
  const createTime = Math.floor(Date.now() / 1000);
  for (const [name, count] of config.sets) {
    const pushes: Push[] = [];
    for (let i = 0; i < count; i += 1, index += 1) {
      const openId = `oBench${config.run}_${String(index % config.openIds).padStart(5, '0')}`;
      const msgId = `2${runDigits}${String(index).padStart(8, '0')}`;
      const inner = `<xml><ToUserName><![CDATA[gh_bench_shop]]></ToUserName><FromUserName><![CDATA[${openId}]]></FromUserName>`
        + `<CreateTime>${createTime}</CreateTime><MsgType><![CDATA[text]]></MsgType>`
        + `<Content><![CDATA[你好，我的订单 ${100000 + index} 什么时候发货? message ${index}]]></Content><MsgId>${msgId}</MsgId></xml>`;
      const timestamp = String(createTime);
      const nonce = String(randomInt(1e9));
      const encrypted = encryptWechatMessage(encodingAESKey, appId, inner);
      const query = new URLSearchParams({
        signature: wechatSignature(token, timestamp, nonce), timestamp, nonce, openid: openId,
        encrypt_type: 'aes', msg_signature: wechatSignature(token, timestamp, nonce, encrypted),
      }).toString();
      pushes.push({ query, body: `<xml><ToUserName><![CDATA[gh_bench_shop]]></ToUserName><Encrypt><![CDATA[${encrypted}]]></Encrypt></xml>` });
    }
    sets.set(name, pushes);
  }
  return sets;
}

const coreShare = (since: NodeJS.CpuUsage, wallMs: number) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000 / wallMs;
};

async function clientMain(): Promise<void> {
  let config: ClientConfig | undefined;
  let sets = new Map<string, Push[]>();
  const pools = new Map<Target, Pool>();
  const reply = (message: ClientReply) => process.send!(message);

  /** One push, answered: the outcome is counted, the time to the whole answer returned. */
  const send = async (target: Target, push: Push, outcome: SendOutcome): Promise<void> => {
    const url = config!.urls[target];
    outcome.sent += 1;
    try {
      const response = await pools.get(target)!.request({
        method: 'POST', path: `${url.path}?${push.query}`, headers: { 'content-type': 'text/xml' }, body: push.body,
      });
      const text = await response.body.text();
      if (response.statusCode === 200 && text === expectedAck[target]) outcome.ok += 1;
      else {
        const key = `${response.statusCode} ${JSON.stringify(text.slice(0, 60))}`;
        outcome.bad[key] = (outcome.bad[key] ?? 0) + 1;
      }
    } catch (error) {
      const key = `error ${(error as Error).message}`;
      outcome.bad[key] = (outcome.bad[key] ?? 0) + 1;
    }
  };

  const burst = async (target: Target, set: string, limit?: number): Promise<BurstResult> => {
    const pushes = sets.get(set)!.slice(0, limit);
    const outcome: SendOutcome = { sent: 0, ok: 0, bad: {} };
    const latencies: number[] = [];
    let next = 0;
    const cpu = process.cpuUsage();
    const started = performance.now();
    await Promise.all(Array.from({ length: config!.concurrency }, async () => {
      while (next < pushes.length) {
        const push = pushes[next++]!;
        const at = performance.now();
        await send(target, push, outcome);
        latencies.push(performance.now() - at);
      }
    }));
    const wallMs = performance.now() - started;
    return {
      target, set, ...outcome, seconds: wallMs / 1000, perSecond: outcome.sent / (wallMs / 1000),
      clientCore: coreShare(cpu, wallMs), latency: summarizeLatency(latencies),
    };
  };

  const rate = async (target: Target, set: string, perSecond: number): Promise<RateResult> => {
    const pushes = sets.get(set)!;
    const outcome: SendOutcome = { sent: 0, ok: 0, bad: {} };
    const fromScheduled: number[] = [];
    const fromSend: number[] = [];
    const slowBySecond: Record<string, number> = {};
    const inFlight: Promise<void>[] = [];
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const cpu = process.cpuUsage();
    const started = performance.now();
    let issued = 0;
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const due = Math.min(pushes.length, Math.floor(((performance.now() - started) / 1000) * perSecond) + 1);
        for (; issued < due; issued += 1) {
          const scheduledAt = started + (issued * 1000) / perSecond;
          const sentAt = performance.now();
          inFlight.push(send(target, pushes[issued]!, outcome).then(() => {
            const now = performance.now();
            const ms = now - scheduledAt;
            fromScheduled.push(ms);
            fromSend.push(now - sentAt);
            if (ms > p99GoalMs) {
              const second = String(Math.floor((scheduledAt - started) / 1000));
              slowBySecond[second] = (slowBySecond[second] ?? 0) + 1;
            }
          }));
        }
        if (issued >= pushes.length) { clearInterval(tick); resolve(); }
      }, 1);
    });
    const sendSeconds = (performance.now() - started) / 1000;
    await Promise.all(inFlight);
    const wallMs = performance.now() - started;
    loopDelay.disable();
    return {
      target, set, ...outcome, seconds: wallMs / 1000, targetRate: perSecond, sendRate: issued / sendSeconds,
      clientCore: coreShare(cpu, wallMs), clientLoopDelayMaxMs: loopDelay.max / 1e6,
      fromScheduled: summarizeLatency(fromScheduled), fromSend: summarizeLatency(fromSend), slowBySecond,
    };
  };

  process.on('disconnect', () => process.exit(0));
  process.on('message', (command: ClientCommand) => {
    const work = async (): Promise<ClientReply> => {
      if (command.type === 'build') {
        const started = performance.now();
        config = command.config;
        sets = buildSets(config);
        for (const [target, url] of Object.entries(config.urls) as [Target, { origin: string }][]) {
          pools.set(target, new Pool(url.origin, {
            connections: config.concurrency, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 10_000, bodyTimeout: 10_000,
          }));
        }
        return { type: 'built', messages: [...sets.values()].reduce((n, s) => n + s.length, 0), ms: performance.now() - started };
      }
      if (command.type === 'burst') return { type: 'burst', id: command.id, result: await burst(command.target, command.set, command.limit) };
      return { type: 'rate', id: command.id, result: await rate(command.target, command.set, command.rate) };
    };
    work().then(reply, (error: Error) => reply({ type: 'failed', error: error.stack ?? error.message }));
  });
}

// ---------------------------------------------------------------------------------------------------
// The benchmark (parent): Redis, the two servers, the phases, the verdict.

type WechatMessage = Record<string, string>;
type WechatRequest = IncomingMessage & { query?: Record<string, string>; weixin?: WechatMessage };
type WechatResponse = ServerResponse & { reply(content: unknown): void };
type Next = (error?: unknown) => void;
type WechatFactory = (config: { token: string; appid: string; encodingAESKey: string },
  handler: (req: WechatRequest, res: WechatResponse, next: Next) => void) => (req: WechatRequest, res: ServerResponse, next: Next) => void;

const requireCjs = createRequire(import.meta.url);
const wechat = requireCjs('wechat') as WechatFactory;
const wechatVersion = (JSON.parse(readFileSync(requireCjs.resolve('wechat/package.json'), 'utf8')) as { version: string }).version;

/**
 * The package as its README mounts it, on a bare node:http server: the query parsed into req.query (what
 * connect/express would do; the package needs nothing else), and a handler that adds the parsed message
 * to a BullMQ queue (jobId from MsgId, the gateway's inbound job options) before the empty ack.
 */
async function startPackageServer(queue: Queue): Promise<{ server: Server; origin: string }> {
  const middleware = wechat({ token, appid: appId, encodingAESKey }, (req, res) => {
    const message = req.weixin!;
    // BullMQ refuses an all-digit custom id, so the MsgId gets a prefix.
    queue.add('inbound', message, { ...jobOptions.inbound, jobId: `wx_${message.MsgId}` }).then(
      () => res.reply(''),
      () => { res.writeHead(500); res.end(); },
    );
  });
  const server = createServer((req: WechatRequest, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/wechat') { res.writeHead(404); res.end(); return; }
    req.query = Object.fromEntries(url.searchParams);
    middleware(req, res, (error) => { res.writeHead(error ? 400 : 404); res.end(); });
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', () => resolve()); });
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** An account and a safe-mode WeChat inbox, through the public API. */
async function createWechatInbox(gatewayUrl: string, adminKey: string): Promise<string> {
  const account = await call(gatewayUrl, 'POST', '/api/v1/accounts', adminKey, { name: 'Bench WeChat shop' });
  const inbox = await call(gatewayUrl, 'POST', `/api/v1/accounts/${account.account.id}/inboxes`, account.key, {
    type: 'wechat', name: 'Bench OA', settings: {}, credentials: { appId, appSecret: 'bench-secret', token, encodingAESKey },
  });
  return inbox.id as string;
}

/** The host's CPU time so far from /proc/stat (Linux), in ticks: all, stolen by the hypervisor, and busy (anyone's work). */
interface HostTicks { total: number; steal: number; busy: number }
function hostTicks(): HostTicks | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return { total: fields.reduce((x, y) => x + y, 0), steal, busy: user + nice + system + irq + softirq };
  } catch {
    return undefined;
  }
}
const stealBetween = (a?: HostTicks, b?: HostTicks) => (a && b ? (b.steal - a.steal) / Math.max(1, b.total - a.total) : NaN);
/** Cores kept busy by every process on the host (ours included) between two readings. */
const busyCoresBetween = (a?: HostTicks, b?: HostTicks) => (a && b ? ((b.busy - a.busy) / Math.max(1, b.total - a.total)) * cpus().length : NaN);

/** What the server side cost during a phase: this process (both servers; one is idle), Redis, the host. */
interface ServerLoad {
  wallSeconds: number; serverCpuSeconds: number; redisCpuSeconds: number; loopDelayP99Ms: number; loopDelayMaxMs: number;
  /** The host over the phase: stolen share, and cores busy with anyone's work (the rest of the session's processes, other sessions). */
  steal: number; hostBusyCores: number;
}

class LoadClient {
  private readonly child = fork(new URL(import.meta.url), ['load-client'], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  private waiting = new Map<number | 'built', { resolve: (reply: ClientReply) => void; reject: (error: Error) => void }>();
  private nextId = 1;

  constructor() {
    this.child.on('message', (reply: ClientReply) => {
      if (reply.type === 'failed') return this.failAll(new Error(`load client failed: ${reply.error}`));
      const key = reply.type === 'built' ? 'built' : reply.id;
      this.waiting.get(key)?.resolve(reply);
      this.waiting.delete(key);
    });
    this.child.on('exit', (code) => this.failAll(new Error(`load client exited (${code})`)));
  }

  private failAll(error: Error) {
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
  }

  private ask(key: number | 'built', command: ClientCommand): Promise<ClientReply> {
    return new Promise((resolve, reject) => {
      this.waiting.set(key, { resolve, reject });
      this.child.send(command);
    });
  }

  async build(config: ClientConfig) { return (await this.ask('built', { type: 'build', config })) as Extract<ClientReply, { type: 'built' }>; }
  async burst(target: Target, set: string, limit?: number): Promise<BurstResult> {
    const id = this.nextId++;
    return ((await this.ask(id, { type: 'burst', id, target, set, limit })) as Extract<ClientReply, { type: 'burst' }>).result;
  }
  async rate(target: Target, set: string, rate: number): Promise<RateResult> {
    const id = this.nextId++;
    return ((await this.ask(id, { type: 'rate', id, target, set, rate })) as Extract<ClientReply, { type: 'rate' }>).result;
  }
  stop() { if (this.child.exitCode === null) this.child.kill(); }
}

async function measured<T>(observer: Redis, work: () => Promise<T>): Promise<{ result: T; load: ServerLoad }> {
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  const redisStart = await redisCpuSeconds(observer);
  const ticks = hostTicks();
  const cpu = process.cpuUsage();
  const started = performance.now();
  loopDelay.enable();
  const result = await work();
  loopDelay.disable();
  const used = process.cpuUsage(cpu);
  const wallSeconds = (performance.now() - started) / 1000;
  const redisEnd = await redisCpuSeconds(observer);
  return {
    result,
    load: {
      wallSeconds, serverCpuSeconds: (used.user + used.system) / 1e6, redisCpuSeconds: redisEnd.own - redisStart.own,
      ...((end) => ({ steal: stealBetween(ticks, end), hostBusyCores: busyCoresBetween(ticks, end) }))(hostTicks()), loopDelayP99Ms: loopDelay.percentile(99) / 1e6, loopDelayMaxMs: loopDelay.max / 1e6,
    },
  };
}

/** A CPU profile of this process (both servers; one is busy) while `work` runs, written to `file`. */
async function profiled<T>(file: string, work: () => Promise<T>): Promise<T> {
  const profile = await startCpuProfile();
  try {
    return await work();
  } finally {
    await profile.stop(file);
  }
}

/** Redis stalls seen during the phases, without the drains between them (embedded Redis only: its logs are reset after each drain). */
function mergeStalls(snapshots: RedisStalls[]): { events: Map<string, number>; slowest: { ms: number; command: string }[] } {
  const events = new Map<string, number>();
  for (const snapshot of snapshots) for (const e of snapshot.events) events.set(e.event, Math.max(events.get(e.event) ?? 0, e.maxMs));
  return { events, slowest: snapshots.flatMap((x) => x.slowest).sort((a, b) => b.ms - a.ms).slice(0, 5) };
}

/** Jobs a queue holds in any state: with nobody consuming, every accepted message is still there. */
async function jobCount(queue: Queue): Promise<number> {
  const counts = await queue.getJobCounts();
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

interface Check { what: string; target: Target; expected: number; found: number }

const num = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '—');
const pct = (value: number) => (Number.isFinite(value) ? `${(value * 100).toFixed(0)}%` : '—');
const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
const perRequestMs = (seconds: number, count: number) => (count ? (seconds * 1000) / count : NaN);
const latencyRow = (name: string, s: LatencySummary, note = '') =>
  `  ${`${name} (${s.count})`.padEnd(46)}${[s.p50, s.p95, s.p99, s.max].map((v) => num(v).padStart(8)).join('')} ms  ${note}`;

async function main() {
  const n = Math.round(numberEnv('BENCH_N', 10000));
  const roundCount = Math.round(numberEnv('BENCH_ROUNDS', 5));
  const concurrency = Math.round(numberEnv('BENCH_CONCURRENCY', 32));
  const openIds = Math.round(numberEnv('BENCH_OPENIDS', 1000));
  const rate = numberEnv('BENCH_RATE', 1000);
  const seconds = numberEnv('BENCH_SECONDS', 10);
  const latencyMessages = Math.round(rate * seconds);
  const profileDir = process.env.BENCH_CPU_PROF || undefined;

  const redis = await benchRedis('wechat');
  const run = randomBytes(3).toString('hex');
  const gatewayPrefix = `bench-wechat-gw-${run}`;
  const packagePrefix = `bench-wechat-pkg-${run}`;
  const observer = createRedis(redis.url, 'bench-observer');
  await redis.watchStalls(observer);
  // The package's producer connection is made like the gateway's (auto-pipelined, BullMQ's options).
  const packageConnection = createRedis(redis.url, 'bench-wechat-package', { autoPipelining: true });
  const packageQueue = new Queue('inbound', { connection: packageConnection, prefix: `${packagePrefix}:q` });
  const queues: Record<Target, Queue> = {
    gateway: new Queue('inbound', { connection: observer, prefix: `${gatewayPrefix}:q` }),
    package: new Queue('inbound', { connection: observer, prefix: `${packagePrefix}:q` }),
  };
  let gateway: Gateway | undefined;
  let packageServer: Server | undefined;
  let client: LoadClient | undefined;
  const hostStart = hostTicks();
  try {
    const adminKey = `admin-${randomBytes(16).toString('hex')}`;
    const settings = benchSettings(gatewayPrefix, adminKey);
    // Role web: the HTTP side only. The ack needs nothing more, and neither side runs a consumer.
    gateway = await createGateway({ settings, redisUrl: redis.url, secretKey: randomBytes(32).toString('base64'), log: createLogger(settings.logLevel), role: 'web' });
    await gateway.start();
    const inboxId = await createWechatInbox(gateway.url, adminKey);
    const pkg = await startPackageServer(packageQueue);
    packageServer = pkg.server;

    const sets: [string, number][] = [
      ['warmup', warmupMessages],
      ...Array.from({ length: roundCount }, (_, r): [string, number] => [`round${r}`, n]),
      ['latency', latencyMessages],
      ...(profileDir ? [['profile', n] as [string, number]] : []),
    ];
    client = new LoadClient();
    const built = await client.build({
      urls: { gateway: { origin: gateway.url, path: `/wechat/${inboxId}` }, package: { origin: pkg.origin, path: '/wechat' } },
      run, openIds, concurrency, sets,
    });
    console.log(`setup: ${built.messages} safe-mode pushes signed and encrypted in ${(built.ms / 1000).toFixed(1)} s; wechat ${wechatVersion} on node:http, gateway role web`);

    const checks: Check[] = [];
    const answers: Record<Target, SendOutcome> = { gateway: { sent: 0, ok: 0, bad: {} }, package: { sent: 0, ok: 0, bad: {} } };
    const tally = (target: Target, outcome: SendOutcome) => {
      answers[target].sent += outcome.sent;
      answers[target].ok += outcome.ok;
      for (const [key, count] of Object.entries(outcome.bad)) answers[target].bad[key] = (answers[target].bad[key] ?? 0) + count;
    };
    const stallSnapshots: RedisStalls[] = [];
    /** Both queues must hold exactly the set's distinct messages; then they are emptied for the next phase. */
    const checkAndDrain = async (what: string, expected: number) => {
      if (redis.embedded) stallSnapshots.push(await redisStalls(observer));
      for (const target of ['gateway', 'package'] as Target[]) {
        checks.push({ what, target, expected, found: await jobCount(queues[target]) });
        await queues[target].drain(true);
      }
      // A drain is one long script: not a stall the servers met.
      if (redis.embedded) await Promise.all([observer.call('SLOWLOG', 'RESET'), observer.call('LATENCY', 'RESET')]);
    };

    // Warm-up (JIT, connections, scripts), then WeChat's retries of the first 200: no new job on either side.
    for (const target of ['package', 'gateway'] as Target[]) {
      tally(target, await client.burst(target, 'warmup'));
      tally(target, await client.burst(target, 'warmup', retriedMessages));
    }
    await checkAndDrain(`warm-up ${warmupMessages} + ${retriedMessages} retried`, warmupMessages);

    const rounds: Record<Target, { result: BurstResult; load: ServerLoad }>[] = [];
    for (let round = 0; round < roundCount; round += 1) {
      const order: Target[] = round % 2 === 0 ? ['package', 'gateway'] : ['gateway', 'package'];
      const pair = {} as Record<Target, { result: BurstResult; load: ServerLoad }>;
      for (const target of order) {
        pair[target] = await measured(observer, () => client!.burst(target, `round${round}`));
        tally(target, pair[target].result);
      }
      await checkAndDrain(`round ${round + 1}`, n);
      rounds.push(pair);
      console.log(`  round ${round + 1}/${roundCount} (${order.join(' first, then ')}): package ${pair.package.result.perSecond.toFixed(0)} req/s, ` +
        `gateway ${pair.gateway.result.perSecond.toFixed(0)} req/s, ratio ${(pair.gateway.result.perSecond / pair.package.result.perSecond).toFixed(2)}×, ` +
        `steal ${pct(pair.package.load.steal)} / ${pct(pair.gateway.load.steal)}, host busy ${num(pair.package.load.hostBusyCores, 2)} / ${num(pair.gateway.load.hostBusyCores, 2)} cores`);
    }

    const latency = {} as Record<Target, { result: RateResult; load: ServerLoad }>;
    for (const target of ['package', 'gateway'] as Target[]) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      latency[target] = await measured(observer, () => client!.rate(target, 'latency', rate));
      tally(target, latency[target].result);
    }
    await checkAndDrain(`latency ${latencyMessages}`, latencyMessages);
    const hostEnd = hostTicks();
    const profiles: string[] = [];
    if (profileDir) {
      mkdirSync(profileDir, { recursive: true });
      for (const target of ['package', 'gateway'] as Target[]) {
        const file = join(profileDir, `wechat-${target}-${run}.cpuprofile`);
        tally(target, await profiled(file, () => client!.burst(target, 'profile')));
        profiles.push(file);
      }
      await checkAndDrain(`profile ${n}`, n);
    }

    // The verdict.
    const ratioOf = (pair: Record<Target, { result: BurstResult }>) => pair.gateway.result.perSecond / pair.package.result.perSecond;
    const median = [...rounds].sort((a, b) => ratioOf(a) - ratioOf(b))[Math.floor(rounds.length / 2)]!;
    const ratio = ratioOf(median);
    const spread = (pick: (pair: Record<Target, { result: BurstResult; load: ServerLoad }>) => number, digits = 0) =>
      `${Math.min(...rounds.map(pick)).toFixed(digits)}–${Math.max(...rounds.map(pick)).toFixed(digits)}`;
    const checksOk = checks.every((c) => c.found === c.expected);
    const answersOk = (['gateway', 'package'] as Target[]).every((t) => answers[t].ok === answers[t].sent);
    const throughputOk = ratio >= throughputGoal && checksOk && answersOk;
    const gwLatency = latency.gateway.result;
    const latencyOk = gwLatency.fromScheduled.p99 <= p99GoalMs && gwLatency.ok === gwLatency.sent;
    const cpuOf = (m: { result: { sent: number }; load: ServerLoad }) => ({
      server: perRequestMs(m.load.serverCpuSeconds, m.result.sent), redis: perRequestMs(m.load.redisCpuSeconds, m.result.sent),
    });
    /** What the rest of the host did meanwhile (another session's tests, say), in cores: busy minus this bench's three parties
     *  (tick accounting under steal makes this ±10% of a core; below zero reads as none). */
    const othersCores = (m: { result: { clientCore: number }; load: ServerLoad }) =>
      m.load.hostBusyCores - (m.load.serverCpuSeconds + m.load.redisCpuSeconds) / m.load.wallSeconds - m.result.clientCore;
    const clientCpuMs = (r: { clientCore: number; seconds: number; sent: number }) => perRequestMs(r.clientCore * r.seconds, r.sent);
    const cpuRow = (name: string, m: { result: BurstResult | RateResult; load: ServerLoad }) => {
      const c = cpuOf(m);
      return `  ${name.padEnd(46)}${num(c.server, 3).padStart(8)} ms server + ${num(c.redis, 3)} ms redis (+ ${num(clientCpuMs(m.result), 3)} ms client); ` +
        `server ${pct(m.load.serverCpuSeconds / m.load.wallSeconds)} of a core, redis ${pct(m.load.redisCpuSeconds / m.load.wallSeconds)}, ` +
        `client ${pct(m.result.clientCore)}; others ${pct(Math.max(0, othersCores(m)))}; loop delay p99 ${num(m.load.loopDelayP99Ms)} ms, max ${num(m.load.loopDelayMaxMs)} ms; steal ${pct(m.load.steal)}`;
    };
    const badAnswers = (t: Target) => Object.entries(answers[t].bad).map(([k, c]) => `${c}× ${k}`).join(', ');
    const lines = [
      '',
      `wechat webhook benchmark (safe mode): ${roundCount} rounds of ${n} pushes from ${openIds} OpenIDs at ${concurrency} in flight (median round by ratio), ` +
        `ack latency at ${rate} req/s for ${seconds} s; both servers in this process, no consumer on either queue; load from a forked undici client; ${redis.description}`,
      '',
      `  ${'throughput'.padEnd(46)}${'value'.padStart(8)}${''.padEnd(9)}${'goal'.padEnd(9)}result`,
      `  ${`wechat ${wechatVersion} (node-webot) + BullMQ add`.padEnd(46)}${median.package.result.perSecond.toFixed(0).padStart(8)} req/s    ${''.padEnd(9)}(rounds ${spread((p) => p.package.result.perSecond)})`,
      `  ${'gateway POST /wechat/{inboxId}'.padEnd(46)}${median.gateway.result.perSecond.toFixed(0).padStart(8)} req/s    ${''.padEnd(9)}(rounds ${spread((p) => p.gateway.result.perSecond)})`,
      `  ${'gateway / package'.padEnd(46)}${ratio.toFixed(2).padStart(8)} ×        ${`≥ ${throughputGoal}×`.padEnd(9)}${verdict(throughputOk)}  (rounds ${spread(ratioOf, 2)})`,
      // CPU time per request is what the host's steal distorts least: it is spent, not waited for.
      `  cpu per request, median round:`,
      cpuRow('  package', median.package),
      cpuRow('  gateway', median.gateway),
      `  ${'server cpu per request: package / gateway'.padEnd(46)}${(cpuOf(median.package).server / cpuOf(median.gateway).server).toFixed(2).padStart(8)} ×  ` +
        `(rounds ${spread((p) => cpuOf(p.package).server / cpuOf(p.gateway).server, 2)})`,
      `  ${'ack time under load (at concurrency), p50/p99'.padEnd(46)}package ${num(median.package.result.latency.p50)}/${num(median.package.result.latency.p99)} ms, ` +
        `gateway ${num(median.gateway.result.latency.p50)}/${num(median.gateway.result.latency.p99)} ms`,
      '',
      `  ${`ack latency at ${rate} req/s (from the scheduled send)`.padEnd(46)}${['p50', 'p95', 'p99', 'max'].map((h) => h.padStart(8)).join('')}`,
      latencyRow(`gateway (sent at ${gwLatency.sendRate.toFixed(0)}/s)`, gwLatency.fromScheduled, `goal p99 ≤ ${p99GoalMs} ms  ${verdict(latencyOk)}`),
      latencyRow('gateway, from the actual write', gwLatency.fromSend),
      latencyRow(`package (sent at ${latency.package.result.sendRate.toFixed(0)}/s)`, latency.package.result.fromScheduled),
      latencyRow('package, from the actual write', latency.package.result.fromSend),
      cpuRow('  cpu at this rate: package', latency.package),
      cpuRow('  cpu at this rate: gateway', latency.gateway),
    ];
    for (const t of ['gateway', 'package'] as Target[]) {
      const slow = Object.entries(latency[t].result.slowBySecond);
      if (slow.length) lines.push(`  ${t} over ${p99GoalMs} ms, counted by scheduled second: ${slow.map(([s, k]) => `${s}:${k}`).join(' ')}; client loop delay max ${num(latency[t].result.clientLoopDelayMaxMs)} ms`);
    }
    lines.push(
      '',
      `  answers: gateway 200 'success' ${answers.gateway.ok}/${answers.gateway.sent}, package 200 '' (res.reply('')) ${answers.package.ok}/${answers.package.sent}` +
        `  ${verdict(answersOk)}${answersOk ? '' : ` — gateway: ${badAnswers('gateway') || 'none'}; package: ${badAnswers('package') || 'none'}`}`,
      `  queued (jobs / distinct messages sent): ${checks.map((c) => `${c.what} ${c.target} ${c.found}/${c.expected}`).join(', ')}  ${verdict(checksOk)}`,
      `  host: ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}, cpu steal ${num(stealBetween(hostStart, hostEnd) * 100)}% over the run`,
    );
    console.log(lines.join('\n'));
    const stalls = await redisStalls(observer);
    const seen = mergeStalls(stallSnapshots);
    console.log(`  redis: ${stalls.aofRewrites} AOF rewrites, ${stalls.forks} forks (latest ${stalls.latestForkMs.toFixed(1)} ms)` +
      (redis.embedded ? `; stalls over 10 ms (drains between phases left out): ${[...seen.events].map(([event, ms]) => `${event} max ${ms} ms`).join(', ') || 'none'}` : '') +
      (redis.embedded && seen.slowest.length ? `\n  redis slowest: ${seen.slowest.map((c) => `${c.command} ${c.ms.toFixed(0)} ms`).join('; ')}` : ''));
    if (profiles.length) console.log(`  cpu profiles (one more burst of ${n} each, not in the figures above): ${profiles.join(', ')}`);
    if (process.env.BENCH_JSON === '1') {
      console.log(JSON.stringify({
        n, roundCount, concurrency, openIds, rate, seconds, wechatVersion, rounds, latency, checks, answers,
        median: { package: median.package.result.perSecond, gateway: median.gateway.result.perSecond, ratio },
        goals: { throughputGoal, p99GoalMs, throughputOk, latencyOk },
      }));
    }
  } finally {
    client?.stop();
    if (packageServer) {
      packageServer.closeAllConnections();
      await new Promise<void>((resolve) => packageServer!.close(() => resolve()));
    }
    await gateway?.stop().catch(() => undefined);
    await packageQueue.close().catch(() => undefined);
    packageConnection.disconnect();
    if (!redis.embedded) {
      for (const queue of Object.values(queues)) await queue.obliterate({ force: true }).catch(() => undefined);
      for (const prefix of [gatewayPrefix]) {
        let cursor = '0';
        do {
          const [next, keys] = await observer.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length) await observer.unlink(...keys);
        } while (cursor !== '0');
      }
    }
    for (const queue of Object.values(queues)) await queue.close().catch(() => undefined);
    observer.disconnect();
    await redis.stop();
  }
}

if (process.argv[2] === 'load-client') {
  void clientMain();
} else {
  main().catch((error) => {
    console.error(error instanceof Error ? error.stack ?? error.message : error);
    process.exitCode = 1;
  });
}
