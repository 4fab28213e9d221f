// `npm run bench:routing`: the routing core alone, on its Lua scripts, with BENCH_AGENTS (1000) agents of
// capacity BENCH_CAPACITY (3), all full, and never fewer than BENCH_WAITING (10000) conversations waiting.
//   - agents coming online: each updateAgentPresence(online) takes `capacity` waiting conversations;
//   - resolve → next assigned: BENCH_CONCURRENCY (16) clients resolve held conversations, each resolve
//     hands the freed agent the next waiting one (resolveConversation); BENCH_ROUNDS (3) rounds of
//     BENCH_N (10000) assignments, taking turns with the floor; the median round is the verdict;
//   - latency capacity-freed → next-assigned: a resolve every 1/BENCH_RATE (500/s) s for BENCH_SECONDS
//     (10) s, timed from sending the resolve to an independent reader seeing conversation.assigned
//     (XREAD BLOCK on the account's event stream), as an agent's console would.
// The floor, measured in the same run on the same Redis with the same clients and reader: a bare Lua
// move (HSET the freed conversation, ZPOPMIN the next one, HSET its assignee, XADD one event).
// Goals (issue 3): ≥ 2,000 assignments/s; p99 capacity-freed → next-assigned ≤ 50 ms.
// REDIS_URL (else an embedded redis-server with AOF as in production), BENCH_JSON=1 prints JSON too.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import type { Redis } from 'ioredis';
import { runScript } from '../src/commands/index.ts';
import { createRedis } from '../src/redis/connection.ts';
import { benchRedis, numberEnv } from './benchRedis.ts';
import { keyspace, type Keyspace } from '../src/redis/keys.ts';
import { CpuMeter, redisStalls, summarizeLatency, type LatencySummary } from './stats.ts';

const assignmentsGoal = 2000;
const p99GoalMs = 50;
const warmupMoves = 500;
const accountId = 'acc_bench';
const inboxId = 'inb_bench';
const defaultTargets = JSON.stringify([{ queueId: 'default', timeoutMs: 0 }]);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

/** A conversation an agent holds: what a resolve frees. */
interface Held { convId: string; agentId: string }

/**
 * The independent reader: XREAD BLOCK on an event stream, counting conversation.assigned events. Every
 * conversation it sees assigned joins the pool the clients resolve from; a resolve sent for an agent
 * (pending) gets its latency when that agent's next conversation.assigned arrives.
 */
class AssignedFeed {
  readonly pool: Held[] = [];
  assigned = 0;
  lastAssignedAt = 0;
  readonly pending = new Map<string, number>();
  samples: { sentAt: number; ms: number }[] = [];
  private readonly takers: ((held: Held) => void)[] = [];
  private readonly targets: { count: number; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private stopped = false;
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly redis: Redis, private readonly streamKey: string) {}

  async start(): Promise<void> {
    const last = (await this.redis.call('XREVRANGE', this.streamKey, '+', '-', 'COUNT', '1')) as [string, string[]][];
    let from = last[0]?.[0] ?? '0-0';
    this.running = (async () => {
      while (!this.stopped) {
        const reply = (await this.redis.call('XREAD', 'COUNT', '1000', 'BLOCK', '100', 'STREAMS', this.streamKey, from)) as unknown[] | null;
        if (!reply) continue;
        const seenAt = performance.now();
        // RESP2 answers [[stream, entries]]; RESP3 (a map) comes back flattened as [stream, entries].
        const entries = (typeof reply[0] === 'string' ? reply[1] : (reply[0] as unknown[])[1]) as [string, string[]][];
        for (const [entryId, fields] of entries) {
          from = entryId;
          const envelope = fields[fields.indexOf('e') + 1]!;
          if (!envelope.includes('"type":"conversation.assigned"')) continue;
          const event = JSON.parse(envelope) as { subject: string; data: { assigneeId: string } };
          this.onAssigned({ convId: event.subject, agentId: event.data.assigneeId }, seenAt);
        }
      }
    })().catch((error: unknown) => {
      for (const target of this.targets.splice(0)) target.reject(error);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    this.redis.disconnect();
  }

  private onAssigned(held: Held, seenAt: number) {
    this.assigned += 1;
    this.lastAssignedAt = seenAt;
    const sentAt = this.pending.get(held.agentId);
    if (sentAt !== undefined) {
      this.samples.push({ sentAt, ms: seenAt - sentAt });
      this.pending.delete(held.agentId);
    }
    const taker = this.takers.shift();
    if (taker) taker(held);
    else this.pool.push(held);
    while (this.targets.length && this.targets[0]!.count <= this.assigned) this.targets.shift()!.resolve();
  }

  /** The next held conversation, waiting for one to be assigned when none is free. */
  take(): Promise<Held> {
    const held = this.pool.shift();
    return held ? Promise.resolve(held) : new Promise((resolve) => this.takers.push(resolve));
  }

  /** A held conversation whose agent has no resolve in flight (latency phase: one per agent at a time). */
  takeIdleAgent(): Held | undefined {
    for (let i = 0; i < Math.min(this.pool.length, 1000); i += 1) {
      if (!this.pending.has(this.pool[i]!.agentId)) return this.pool.splice(i, 1)[0];
    }
    return undefined;
  }

  /** Resolves once `count` assignments in all have been seen. */
  until(count: number): Promise<void> {
    if (this.assigned >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.targets.push({ count, resolve, reject });
      this.targets.sort((a, b) => a.count - b.count);
    });
  }
}

/** One resolve → next-assigned move, for the routing core or the floor. */
interface Mover {
  name: string;
  feed: AssignedFeed;
  move(redis: Redis, held: Held): Promise<void>;
}

function routingMover(keys: Keyspace, feed: AssignedFeed): Mover {
  return {
    name: 'routing', feed,
    async move(redis, held) {
      const now = new Date();
      const r = (await runScript(redis, 'resolveConversation', [keys.conversation(held.convId), keys.openConversation(inboxId, held.convId)],
        [keys.prefix, now.toISOString(), held.agentId, now.getTime()])) as string[];
      if (r[0] !== 'resolved') throw new Error(`resolveConversation ${held.convId}: ${r.join(' ')}`);
    },
  };
}

// The floor: the least an atomic resolve → next-assigned can do.
const floorLua = `
redis.call('HSET', KEYS[1], 'status', 'resolved', 'assigneeId', '', 'resolvedAt', ARGV[3])
local next = redis.call('ZPOPMIN', KEYS[2])
if #next == 0 then return false end
local id = next[1]
redis.call('HSET', ARGV[1] .. id, 'assigneeId', ARGV[2], 'assignedAt', ARGV[3], 'updatedAt', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 200000, '*', 'e', '{"specversion":"1.0","id":"evt_' .. id .. '_a1","type":"conversation.assigned","time":"'
  .. ARGV[3] .. '","subject":"' .. id .. '","data":{"id":"' .. id .. '","assigneeId":"' .. ARGV[2] .. '","assignedAtMs":' .. ARGV[4] .. '}}')
return id
`;

function floorMover(prefix: string, sha: string, feed: AssignedFeed): Mover {
  return {
    name: 'floor', feed,
    async move(redis, held) {
      const now = new Date();
      const next = await redis.evalsha(sha, 3, `${prefix}:conv:${held.convId}`, `${prefix}:waiting`, `${prefix}:events`,
        `${prefix}:conv:`, held.agentId, now.toISOString(), now.getTime());
      if (!next) throw new Error('floor: nobody waiting');
    },
  };
}

interface Measured { count: number; seconds: number; perSecond: number; benchCore: number; redisCore: number; redisCpuMsPer: number; scriptUsecPer: number; callsPer: Record<string, number> }

/** Runs `work`, which must end in `count` assignments, and measures rate, CPU and what Redis ran for them. */
async function measure(observer: Redis, feed: AssignedFeed, count: number, work: () => Promise<void>): Promise<Measured> {
  const meter = new CpuMeter(observer);
  await meter.start();
  const target = feed.assigned + count;
  const reached = feed.until(target);
  const started = performance.now();
  await work();
  await withTimeout(reached, 60_000, `${count} assignments`);
  const seconds = (feed.lastAssignedAt - started) / 1000;
  const cpu = await meter.stop();
  const delta = cpu.commands;
  const scripts = delta.get('evalsha') ?? { calls: 0, usec: 0 };
  const callsPer: Record<string, number> = {};
  for (const [name, d] of [...delta].sort((a, b) => b[1].calls - a[1].calls)) {
    if (!['evalsha', 'info', 'xread', 'xrevrange'].includes(name)) callsPer[name] = d.calls / count;
  }
  return {
    count, seconds, perSecond: count / seconds, benchCore: cpu.processCore, redisCore: cpu.redisCore,
    redisCpuMsPer: (cpu.redisCore * seconds * 1000) / count, scriptUsecPer: scripts.calls ? scripts.usec / scripts.calls : NaN, callsPer,
  };
}

/** `count` resolves from `clients` concurrent clients, each resolving the next held conversation as soon as its last one returns. */
function throughput(observer: Redis, clients: Redis[], mover: Mover, count: number): Promise<Measured> {
  return measure(observer, mover.feed, count, async () => {
    let issued = 0;
    await Promise.all(clients.map(async (client) => {
      while (issued < count) {
        issued += 1;
        await mover.move(client, await mover.feed.take());
      }
    }));
  });
}

interface LatencyResult { sent: number; sendRate: number; seen: LatencySummary; reply: LatencySummary; slowBySecond: Record<string, number> }

/** A resolve every 1/rate s, round robin over the clients; latency to the reader seeing the next conversation.assigned. */
async function latency(clients: Redis[], mover: Mover, rate: number, seconds: number): Promise<LatencyResult> {
  const feed = mover.feed;
  const total = Math.round(rate * seconds);
  const reached = feed.until(feed.assigned + total);
  feed.samples = [];
  const replies: number[] = [];
  const moves: Promise<void>[] = [];
  const started = performance.now();
  let sent = 0;
  let failure: unknown;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
      for (; sent < due; sent += 1) {
        const held = feed.takeIdleAgent();
        if (!held) break;
        const sentAt = performance.now();
        feed.pending.set(held.agentId, sentAt);
        moves.push(mover.move(clients[sent % clients.length]!, held).then(() => { replies.push(performance.now() - sentAt); }, (error) => { failure = error; }));
      }
      if (sent >= total || failure) { clearInterval(tick); resolve(); }
    }, 2);
  });
  const sendSeconds = (performance.now() - started) / 1000;
  await Promise.all(moves);
  if (failure) throw failure;
  await withTimeout(reached, 30_000, `${total} assignments in the latency phase`);
  // Where the slow ones were, by when they were sent (s into the phase): a fork or a neighbour shows as a cluster.
  const slowBySecond: Record<string, number> = {};
  for (const sample of feed.samples) {
    if (sample.ms <= p99GoalMs) continue;
    const at = String(Math.floor((sample.sentAt - started) / 1000));
    slowBySecond[at] = (slowBySecond[at] ?? 0) + 1;
  }
  return { sent, sendRate: sent / sendSeconds, seen: summarizeLatency(feed.samples.map((s) => s.ms)), reply: summarizeLatency(replies), slowBySecond };
}

/** The host's CPU time so far from /proc/stat (Linux): total and stolen by the hypervisor, in ticks. */
function hostTicks(): { total: number; steal: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { total: fields.slice(0, 8).reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
  } catch {
    return undefined;
  }
}

async function deleteKeys(redis: Redis, prefixes: string[]) {
  for (const prefix of prefixes) {
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (found.length) await redis.unlink(...found);
    } while (cursor !== '0');
  }
}

async function inBatches(count: number, batch: number, one: (i: number) => Promise<unknown>) {
  for (let start = 0; start < count; start += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, count - start) }, (_, j) => one(start + j)));
  }
}

const num = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '—');
const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
const latencyRow = (name: string, s: LatencySummary, note = '') =>
  `  ${`${name} (${s.count})`.padEnd(44)}${[s.p50, s.p95, s.p99, s.max].map((v) => num(v).padStart(8)).join('')} ms  ${note}`;

async function main() {
  const agents = Math.round(numberEnv('BENCH_AGENTS', 1000));
  const capacity = Math.round(numberEnv('BENCH_CAPACITY', 3));
  const minWaiting = Math.round(numberEnv('BENCH_WAITING', 10000));
  const n = Math.round(numberEnv('BENCH_N', 10000));
  const roundCount = Math.round(numberEnv('BENCH_ROUNDS', 3));
  const concurrency = Math.round(numberEnv('BENCH_CONCURRENCY', 16));
  const rate = numberEnv('BENCH_RATE', 500);
  const seconds = numberEnv('BENCH_SECONDS', 10);
  const latencyMoves = Math.round(rate * seconds);
  const held = agents * capacity;
  // Every resolve takes one conversation off the waiting queue: enough for all of them, and minWaiting left at the end.
  const resolves = warmupMoves + roundCount * n + latencyMoves;
  const conversations = held + minWaiting + resolves;

  const benchServer = await benchRedis('routing');
  const { embedded } = benchServer;
  const redisUrl = benchServer.url;
  const run = randomBytes(3).toString('hex');
  const keys = keyspace(`bench-routing-${run}`);
  const floorPrefix = `bench-routing-floor-${run}`;
  const observer = createRedis(redisUrl, 'bench-observer');
  const setup = createRedis(redisUrl, 'bench-setup', { autoPipelining: true });
  const clients = Array.from({ length: concurrency }, (_, i) => createRedis(redisUrl, `bench-client-${i}`));
  const routingFeed = new AssignedFeed(createRedis(redisUrl, 'bench-reader'), keys.accountEvents(accountId));
  const floorFeed = new AssignedFeed(createRedis(redisUrl, 'bench-floor-reader'), `${floorPrefix}:events`);
  await benchServer.watchStalls(observer);
  const hostStart = hostTicks();
  try {
    // Setup: the default queue, agents offline, every conversation routed and waiting.
    const setupStarted = performance.now();
    const iso = () => new Date().toISOString();
    await runScript(setup, 'configureQueue', [keys.routingQueue(accountId, 'default', 'cfg')],
      [keys.prefix, iso(), Date.now(), accountId, 'default', 'least_busy', 0, '', '0']);
    const agentId = (i: number) => `ag_${run}_${String(i).padStart(5, '0')}`;
    await inBatches(agents, 500, (i) => runScript(setup, 'updateAgentPresence', [keys.agentState(agentId(i))],
      [keys.prefix, iso(), Date.now(), accountId, agentId(i), 'offline', capacity, '', '']));
    const convId = (i: number) => `cv_${run}_${String(i).padStart(6, '0')}`;
    await inBatches(conversations, 1000, async (i) => {
      const id = convId(i);
      const openKey = keys.openConversation(inboxId, id);
      const now = iso();
      await setup.set(openKey, id);
      await setup.hset(keys.conversation(id), 'id', id, 'accountId', accountId, 'inboxId', inboxId, 'contactId', `ct_${run}_${i}`,
        'channel', 'webchat', 'channelId', `v${i}`, 'status', 'open', 'assigneeId', '', 'createdAt', now, 'updatedAt', now,
        'visitorHint', '', 'openKey', openKey);
      const r = (await runScript(setup, 'routeConversation', [keys.conversation(id)], [keys.prefix, now, Date.now(), defaultTargets, 0, 0, ''])) as string[];
      if (r[0] !== 'queued') throw new Error(`routeConversation ${id}: ${r.join(' ')}`);
    });
    const routingSetupSeconds = (performance.now() - setupStarted) / 1000;
    // The floor's data: `held` conversations held (agent i % agents), the rest waiting.
    const floorSha = (await observer.script('LOAD', floorLua)) as string;
    await inBatches(conversations, 1000, async (i) => {
      const id = `fl_${String(i).padStart(6, '0')}`;
      await setup.hset(`${floorPrefix}:conv:${id}`, 'id', id, 'accountId', accountId, 'status', 'open', 'assigneeId', i < held ? agentId(i % agents) : '');
      if (i < held) floorFeed.pool.push({ convId: id, agentId: agentId(i % agents) });
      else await setup.zadd(`${floorPrefix}:waiting`, i, id);
    });
    setup.disconnect();
    console.log(`setup: ${agents} agents (capacity ${capacity}), ${conversations} conversations routed and waiting in ${routingSetupSeconds.toFixed(1)} s`);

    await routingFeed.start();
    await floorFeed.start();
    const routing = routingMover(keys, routingFeed);
    const floor = floorMover(floorPrefix, floorSha, floorFeed);

    // Agents coming online: each takes `capacity` waiting conversations inside updateAgentPresence.
    let nextAgent = 0;
    const online = await measure(observer, routingFeed, held, async () => {
      await Promise.all(clients.map(async (client) => {
        while (nextAgent < agents) {
          const id = agentId(nextAgent++);
          const now = new Date();
          await runScript(client, 'updateAgentPresence', [keys.agentState(id)], [keys.prefix, now.toISOString(), now.getTime(), accountId, id, 'online', '', '', '']);
        }
      }));
    });
    console.log(`  agents coming online: ${held} assignments at ${online.perSecond.toFixed(0)}/s`);

    // Warm-up (script cache, connections, JIT), then rounds: the floor and the routing core take turns.
    await throughput(observer, clients, floor, warmupMoves);
    await throughput(observer, clients, routing, warmupMoves);
    const rounds: { floor: Measured; routing: Measured }[] = [];
    for (let round = 0; round < roundCount; round += 1) {
      const f = await throughput(observer, clients, floor, n);
      const r = await throughput(observer, clients, routing, n);
      rounds.push({ floor: f, routing: r });
      console.log(`  round ${round + 1}/${roundCount}: floor ${f.perSecond.toFixed(0)}/s, routing ${r.perSecond.toFixed(0)}/s, ratio ${(100 * r.perSecond / f.perSecond).toFixed(1)} %`);
    }
    await sleep(500);
    const floorLatency = await latency(clients, floor, rate, Math.min(seconds, 5));
    const routingLatency = await latency(clients, routing, rate, seconds);
    const waitingLeft = await observer.zcard(keys.routingQueue(accountId, 'default', 'waiting:webchat'));

    const byRatio = [...rounds].sort((a, b) => a.routing.perSecond / a.floor.perSecond - b.routing.perSecond / b.floor.perSecond);
    const median = byRatio[Math.floor(byRatio.length / 2)]!;
    const ratio = median.routing.perSecond / median.floor.perSecond;
    const spread = (pick: (r: { floor: Measured; routing: Measured }) => number) =>
      `${Math.min(...rounds.map(pick)).toFixed(0)}–${Math.max(...rounds.map(pick)).toFixed(0)}`;
    const throughputOk = median.routing.perSecond >= assignmentsGoal;
    const latencyOk = routingLatency.seen.p99 <= p99GoalMs && routingLatency.seen.count === routingLatency.sent;
    const cpuLine = (m: Measured) => `bench ${(m.benchCore * 100).toFixed(0)}%, redis ${(m.redisCore * 100).toFixed(0)}%`;
    const lines = [
      '',
      `routing benchmark: ${agents} agents × capacity ${capacity} (all full), ${waitingLeft}+ waiting, ${roundCount} rounds of ${n} (median round), ` +
        `${concurrency} concurrent clients, ${embedded ? 'embedded redis-server (AOF everysec)' : 'REDIS_URL'}`,
      '',
      `  ${'throughput'.padEnd(44)}${'value'.padStart(8)}${''.padEnd(15)}${'goal'.padEnd(11)}result`,
      `  ${'floor: bare Lua resolve → assign'.padEnd(44)}${median.floor.perSecond.toFixed(0).padStart(8)} moves/s       (rounds ${spread((r) => r.floor.perSecond)})`,
      `  ${'routing: resolve → next assigned'.padEnd(44)}${median.routing.perSecond.toFixed(0).padStart(8)} assignments/s ${`≥ ${assignmentsGoal}/s`.padEnd(11)}${verdict(throughputOk)}  (rounds ${spread((r) => r.routing.perSecond)})`,
      `  ${'routing / floor'.padEnd(44)}${(ratio * 100).toFixed(1).padStart(8)} %             (rounds ${spread((r) => (100 * r.routing.perSecond) / r.floor.perSecond)} %)`,
      `  ${`agents coming online (${capacity} per agent)`.padEnd(44)}${online.perSecond.toFixed(0).padStart(8)} assignments/s`,
      // Time inside Redis per move is what the host's steal distorts least: spent, not waited for.
      `  ${'redis time per script: floor'.padEnd(44)}${num(median.floor.scriptUsecPer, 0).padStart(8)} µs`,
      `  ${'redis time per script: resolve → assign'.padEnd(44)}${num(median.routing.scriptUsecPer, 0).padStart(8)} µs`,
      `  ${'redis time per script: agent online'.padEnd(44)}${num(online.scriptUsecPer, 0).padStart(8)} µs       (${capacity} assignments each)`,
      `  ${'redis cpu per assignment: floor / routing'.padEnd(44)}${`${num(median.floor.redisCpuMsPer, 3)} / ${num(median.routing.redisCpuMsPer, 3)}`.padStart(8)} ms` +
        `  (one redis core: at most ${(1000 / median.routing.redisCpuMsPer).toFixed(0)} assignments/s)`,
      '',
      `  ${`capacity-freed → next-assigned at ${routingLatency.sendRate.toFixed(0)}/s`.padEnd(44)}${['p50', 'p95', 'p99', 'max'].map((h) => h.padStart(8)).join('')}`,
      latencyRow('routing: conversation.assigned seen', routingLatency.seen, `goal p99 ≤ ${p99GoalMs} ms  ${verdict(latencyOk)}`),
      latencyRow('routing: resolve script reply', routingLatency.reply),
      latencyRow('floor: assigned event seen', floorLatency.seen),
      latencyRow('floor: script reply', floorLatency.reply),
      '',
      `  median round: floor ${median.floor.count} in ${median.floor.seconds.toFixed(2)} s (cpu ${cpuLine(median.floor)}); ` +
        `routing ${median.routing.count} in ${median.routing.seconds.toFixed(2)} s (cpu ${cpuLine(median.routing)})`,
      `  agents online: ${online.count} in ${online.seconds.toFixed(2)} s (cpu ${cpuLine(online)})`,
      `  redis commands per resolve → assign: ${Object.entries(median.routing.callsPer).map(([c, k]) => `${c} ${k.toFixed(1)}`).join(', ')}`,
      `  redis commands per floor move: ${Object.entries(median.floor.callsPer).map(([c, k]) => `${c} ${k.toFixed(1)}`).join(', ')}`,
    ];
    const slow = Object.entries(routingLatency.slowBySecond);
    if (slow.length) lines.push(`  routing over ${p99GoalMs} ms, counted by send time (s into the phase): ${slow.map(([at, k]) => `${at}:${k}`).join(' ')}`);
    if (routingLatency.seen.count !== routingLatency.sent) lines.push(`  INCOMPLETE: ${routingLatency.seen.count}/${routingLatency.sent} assignments seen`);
    console.log(lines.join('\n'));
    const hostEnd = hostTicks();
    const steal = hostStart && hostEnd ? (hostEnd.steal - hostStart.steal) / Math.max(1, hostEnd.total - hostStart.total) : NaN;
    console.log(`  host: ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}, cpu steal ${num(steal * 100)}% over the run`);
    const stalls = await redisStalls(observer);
    console.log(`  redis: ${stalls.aofRewrites} AOF rewrites, ${stalls.forks} forks (latest ${stalls.latestForkMs.toFixed(1)} ms)` +
      (embedded ? `; stalls over 10 ms: ${stalls.events.map((e) => `${e.event} max ${e.maxMs} ms`).join(', ') || 'none'}` : '') +
      (embedded && stalls.slowest.length ? `\n  redis slowest: ${stalls.slowest.map((c) => `${c.command} ${c.ms.toFixed(0)} ms`).join('; ')}` : ''));
    if (process.env.BENCH_JSON === '1') {
      console.log(JSON.stringify({
        agents, capacity, minWaiting, waitingLeft, n, concurrency, rate, seconds, online, rounds,
        median: { floor: median.floor.perSecond, routing: median.routing.perSecond, ratio },
        latency: { routing: routingLatency, floor: floorLatency }, goals: { assignmentsGoal, p99GoalMs, throughputOk, latencyOk },
      }));
    }
  } finally {
    await routingFeed.stop().catch(() => undefined);
    await floorFeed.stop().catch(() => undefined);
    for (const client of clients) client.disconnect();
    setup.disconnect();
    if (embedded) {
      observer.disconnect();
      await benchServer.stop();
    } else {
      await deleteKeys(observer, [keys.prefix, floorPrefix]).catch(() => undefined);
      observer.disconnect();
    }
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.stack ?? error.message : error);
  process.exitCode = 1;
});
