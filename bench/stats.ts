// Small measurement pieces shared by the benchmark phases: percentiles and CPU time of a process or Redis.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { Redis } from 'ioredis';

export interface LatencySummary { count: number; p50: number; p95: number; p99: number; max: number }

/** Nearest-rank percentiles of millisecond samples. */
export function summarizeLatency(samplesMs: number[]): LatencySummary {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : NaN);
  return { count: sorted.length, p50: at(50), p95: at(95), p99: at(99), max: sorted.length ? sorted[sorted.length - 1]! : NaN };
}

/**
 * CPU seconds spent by redis-server so far (main thread and background threads), by its finished children
 * (AOF rewrites: they compete for the same cores, but Redis counts them apart), and its AOF rewrites so far.
 */
export async function redisCpuSeconds(redis: Redis): Promise<{ own: number; children: number; aofRewrites: number; aofBytes: number; aofBase: number }> {
  const info = (await redis.info('cpu')) + (await redis.info('persistence'));
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return {
    own: field('used_cpu_user') + field('used_cpu_sys'),
    children: field('used_cpu_user_children') + field('used_cpu_sys_children'),
    aofRewrites: field('aof_rewrites'),
    // What the incremental AOF holds: a span's difference is what it appended, unless a rewrite ended in it.
    aofBytes: field('aof_current_size') - field('aof_base_size'),
    aofBase: field('aof_base_size'),
  };
}

export type CommandStats = Map<string, { calls: number; usec: number }>;

/** INFO commandstats as {command: {calls, usec}}: Redis 7 counts the commands a script runs too. */
async function redisCommandStats(redis: Redis): Promise<CommandStats> {
  const stats: CommandStats = new Map();
  for (const match of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    stats.set(match[1]!, { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return stats;
}

/** What Redis ran between two readings. */
function commandStatsDelta(before: CommandStats, after: CommandStats): CommandStats {
  const delta: CommandStats = new Map();
  for (const [name, a] of after) {
    const b = before.get(name) ?? { calls: 0, usec: 0 };
    if (a.calls > b.calls) delta.set(name, { calls: a.calls - b.calls, usec: a.usec - b.usec });
  }
  return delta;
}

/** A span's commands per message, busiest first: calls × µs each = µs per message. */
export function describeCommandStats(delta: CommandStats, messages: number): string {
  return [...delta].sort(([, x], [, y]) => y.usec - x.usec)
    .map(([name, c]) => `${name} ${(c.calls / messages).toFixed(2)}×${(c.usec / c.calls).toFixed(1)}=${(c.usec / messages).toFixed(1)}µs`)
    .join(', ');
}

/** CPU of this process and of Redis across a span, as a share of one core. */
export class CpuMeter {
  private processStart = process.cpuUsage();
  private redisStart = { own: 0, children: 0, aofRewrites: 0, aofBytes: 0, aofBase: 0 };
  private wallStart = performance.now();
  private commandsStart: CommandStats = new Map();

  constructor(private readonly redis: Redis) {}

  async start(): Promise<void> {
    this.commandsStart = await redisCommandStats(this.redis);
    this.redisStart = await redisCpuSeconds(this.redis);
    this.processStart = process.cpuUsage();
    this.wallStart = performance.now();
  }

  async stop(): Promise<{ processCore: number; redisCore: number; redisChildCore: number; aofRewrites: number; aofBytes: number; commands: CommandStats }> {
    const used = process.cpuUsage(this.processStart);
    const wallSeconds = (performance.now() - this.wallStart) / 1000;
    const redis = await redisCpuSeconds(this.redis);
    const commands = commandStatsDelta(this.commandsStart, await redisCommandStats(this.redis));
    return {
      commands,
      processCore: (used.user + used.system) / 1e6 / wallSeconds,
      redisCore: (redis.own - this.redisStart.own) / wallSeconds,
      redisChildCore: (redis.children - this.redisStart.children) / wallSeconds,
      aofRewrites: redis.aofRewrites - this.redisStart.aofRewrites,
      // NaN when a rewrite started or ended within the span: the incremental AOF started over.
      aofBytes: redis.aofRewrites === this.redisStart.aofRewrites && redis.aofBase === this.redisStart.aofBase ? redis.aofBytes - this.redisStart.aofBytes : NaN,
    };
  }
}

export interface RedisStalls { events: { event: string; latestMs: number; maxMs: number }[]; slowest: { ms: number; command: string }[]; aofRewrites: number; forks: number; latestForkMs: number }

/** What Redis itself saw stall (needs latency-monitor-threshold set): forks for AOF rewrites, slow fsyncs, slow commands. */
export async function redisStalls(redis: Redis): Promise<RedisStalls> {
  const latest = (await redis.call('LATENCY', 'LATEST')) as [string, number, number, number][];
  const info = (await redis.info('persistence')) + (await redis.info('stats'));
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  const slowlog = (await redis.call('SLOWLOG', 'GET', '128')) as [number, number, number, string[]][];
  const slowest = slowlog.map(([, , micros, args]) => ({ ms: micros / 1000, command: args.slice(0, 2).join(' ').slice(0, 80) }))
    .sort((a, b) => b.ms - a.ms).slice(0, 5);
  return {
    slowest,
    events: latest.map(([event, , latestMs, maxMs]) => ({ event, latestMs: Number(latestMs), maxMs: Number(maxMs) })),
    aofRewrites: field('aof_rewrites'), forks: field('total_forks'), latestForkMs: field('latest_fork_usec') / 1000,
  };
}

/** A CPU profile of this process (sampled every 250 µs) from now until `stop` writes it to a file. */
export async function startCpuProfile(): Promise<{ stop(file: string): Promise<void> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 250 });
  await session.post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}
