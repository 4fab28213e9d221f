// `npm run bench`: N web chat messages through the whole pipeline (visitor socket → queue → ingest →
// routing → live feed → agent socket) beside a floor measured in the same run on the same Redis: a bare
// BullMQ add + no-op process of the same job. Goals: throughput ≥ 50% of the floor; p99 visitor→agent
// ≤ 50 ms at 200 msg/s. Env: BENCH_N (10000), BENCH_ROUNDS (5: floor and gateway take turns; the median
// round is the verdict), BENCH_RATE (200), BENCH_SECONDS (10), REDIS_URL (else an embedded redis-server
// with AOF as in production), BENCH_JSON=1 to print the result as JSON too, BENCH_CPU_PROF=dir to write
// a CPU profile of the last round's gateway throughput phase (the profiler's cost is in that round's figures),
// BENCH_NO_REWRITE=1 to turn the embedded Redis's automatic AOF rewrites off (to see what they cost a round),
// BENCH_CLIENT_PROF=dir to write a CPU profile of each round's load clients process (whole process, setup included),
// BENCH_COMMANDSTATS=1 to print each round's Redis commands per message (INFO commandstats: calls × µs each),
// BENCH_TIMELINE=1 to print each throughput phase by 100 ms (gateway, Redis and host CPU, messages ingested).
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { createRedis } from '../src/redis/connection.ts';
import { benchRedis, numberEnv } from './benchRedis.ts';
import { measureFloor, type FloorResult } from './floor.ts';
import { benchSettings, createBenchTenant, startGatewayUnderTest } from './gatewayUnderTest.ts';
import type { ChildMessage, LatencyResult, LoadConfig, ParentMessage, ThroughputResult } from './loadClients.ts';
import { CpuMeter, describeCommandStats, redisCpuSeconds, redisStalls, startCpuProfile, type CommandStats, type LatencySummary } from './stats.ts';

const throughputGoal = 0.5;
const p99GoalMs = 50;
// The visitor socket's token bucket allows a burst of 20 (src/webchat/visitorChannel.ts).
const perVisitorBurst = 20;
// Both sides warm up on the same number of messages before each measured round: enough for the JIT to
// settle on the gateway's longer path (with 500, its first round came out a quarter slower than the rest).
const warmupMessages = 2000;
const agentCapacityLimit = 1000;

interface PhaseLoad { gatewayCore: number; redisCore: number; redisChildCore: number; aofRewrites: number; aofBytes: number; commands: CommandStats; loopDelayP99Ms: number; loopDelayMaxMs: number }

/** The host's CPU time so far, all cores (/proc/stat, in clock ticks): busy, steal and total. */
function hostCpu() {
  const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number) as number[];
  return { busy: user! + nice! + system! + irq! + softirq! + steal!, steal: steal!, total: user! + nice! + system! + idle! + iowait! + irq! + softirq! + steal! };
}

/** Every 100 ms of the throughput phase: this process's, Redis's and the whole host's CPU, and messages ingested. */
function startTimeline(observer: Redis, ingested: () => Promise<number>) {
  const lines: string[] = [];
  let last: { at: number; cpu: NodeJS.CpuUsage; redis: number; ingested: number; host: ReturnType<typeof hostCpu> } | undefined;
  let reading = false;
  const timer = setInterval(() => {
    if (reading) return;
    reading = true;
    void Promise.all([redisCpuSeconds(observer), ingested()]).then(([redis, count]) => {
      const now = { at: performance.now(), cpu: process.cpuUsage(), redis: redis.own, ingested: count, host: hostCpu() };
      if (last) {
        const wallMs = now.at - last.at;
        const ticks = Math.max(1, now.host.total - last.host.total);
        const gateway = (now.cpu.user + now.cpu.system - last.cpu.user - last.cpu.system) / 1000 / wallMs;
        lines.push(`    +${(now.at / 1000).toFixed(1)} s: gateway ${pct(gateway)}, redis ${pct(((now.redis - last.redis) * 1000) / wallMs)}, ` +
          `host ${pct((now.host.busy - last.host.busy) / ticks)} of all cores (steal ${pct((now.host.steal - last.host.steal) / ticks)}), ` +
          `ingested ${(((now.ingested - last.ingested) * 1000) / wallMs).toFixed(0)}/s`);
      }
      last = now;
    }).finally(() => { reading = false; });
  }, 100);
  return { stop: () => { clearInterval(timer); return lines; } };
}

async function runClients(config: LoadConfig, meterFor: () => CpuMeter, profileFile?: string, timelineOf?: { observer: Redis; ingested: () => Promise<number> }) {
  const clientProfile = process.env.BENCH_CLIENT_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CLIENT_PROF}`] : [];
  const child = fork(new URL('./loadClients.ts', import.meta.url), [], { execArgv: ['--import', 'tsx', ...clientProfile], stdio: 'inherit' });
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  const phases: Record<string, PhaseLoad> = {};
  let meter: CpuMeter | undefined;
  let measured: Promise<void> = Promise.resolve();
  let profile: Awaited<ReturnType<typeof startCpuProfile>> | undefined;
  let timeline: ReturnType<typeof startTimeline> | undefined;
  try {
    return await new Promise<{ throughput: ThroughputResult; latency: LatencyResult; warmupReceived: number; phases: Record<string, PhaseLoad> }>((resolve, reject) => {
      child.on('exit', (code) => reject(new Error(`load clients exited (${code}) without a result`)));
      child.on('message', (message: ChildMessage) => {
        if (message.type === 'failed') return reject(new Error(`load clients failed: ${message.error}`));
        if (message.type === 'result') return void measured.then(() => resolve({ ...message, phases }));
        if (message.edge === 'start') {
          meter = meterFor();
          const profiling = profileFile && message.name === 'throughput' ? startCpuProfile().then((p) => { profile = p; }) : Promise.resolve();
          void profiling.then(() => meter!.start()).then(() => {
            loopDelay.reset();
            if (timelineOf && message.name === 'throughput') timeline = startTimeline(timelineOf.observer, timelineOf.ingested);
            child.send({ type: 'phase-ready' } satisfies ParentMessage);
          }, reject);
        } else {
          const delay = { loopDelayP99Ms: loopDelay.percentile(99) / 1e6, loopDelayMaxMs: loopDelay.max / 1e6 };
          if (timeline) console.log(timeline.stop().join('\n'));
          timeline = undefined;
          measured = meter!.stop().then(async (cpu) => {
            phases[message.name] = { gatewayCore: cpu.processCore, redisCore: cpu.redisCore, redisChildCore: cpu.redisChildCore, aofRewrites: cpu.aofRewrites, aofBytes: cpu.aofBytes, commands: cpu.commands, ...delay };
            if (profile) await profile.stop(profileFile!);
            profile = undefined;
          }, reject);
        }
      });
      child.send({ type: 'start', config } satisfies ParentMessage);
    });
  } finally {
    loopDelay.disable();
    if (child.exitCode === null) child.kill();
  }
}

const num = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : '—');
const pct = (value: number) => `${(value * 100).toFixed(0)}%`;
const cpuMs = (core: number, seconds: number, count: number) => ((core * seconds * 1000) / count).toFixed(3);
// Across a rewrite the incremental AOF starts over, so what a phase appended is known only without one (else NaN).
const aofPerMessage = (bytes: number, count: number) => (Number.isFinite(bytes) ? (bytes / count).toFixed(0) : '—');
const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
const row = (name: string, s: LatencySummary, note = '') =>
  `  ${`${name} (${s.count})`.padEnd(34)}${[s.p50, s.p95, s.p99, s.max].map((v) => num(v).padStart(9)).join('')} ms  ${note}`;
const load = (p: PhaseLoad | undefined, clientCore: number) =>
  p ? `gateway ${pct(p.gatewayCore)}, redis ${pct(p.redisCore)}, clients ${pct(clientCore)}; gateway loop delay p99 ${num(p.loopDelayP99Ms)} ms, max ${num(p.loopDelayMaxMs)} ms` : '—';

function report(config: { n: number; rate: number; seconds: number; concurrency: number; rounds: number; redis: string }, floor: FloorResult,
  throughput: ThroughputResult, latency: LatencyResult, phases: Record<string, PhaseLoad>) {
  const ratio = throughput.messagesPerSecond / floor.jobsPerSecond;
  const complete = throughput.received === throughput.sent && latency.received === latency.sent;
  const lines = [
    `gateway benchmark: N=${config.n}, ${config.rounds} rounds (throughput: the median round), latency at ${config.rate} msg/s for ${config.seconds} s, worker concurrency ${config.concurrency}, ${config.redis}`,
    '',
    `  ${'throughput'.padEnd(34)}${'value'.padStart(7)}${''.padEnd(8)}${'goal'.padEnd(8)}result`,
    `  ${'floor: BullMQ add + no-op process'.padEnd(34)}${floor.jobsPerSecond.toFixed(0).padStart(7)} jobs/s`,
    `  ${'gateway: visitor → agent'.padEnd(34)}${throughput.messagesPerSecond.toFixed(0).padStart(7)} msg/s`,
    `  ${'gateway / floor'.padEnd(34)}${(ratio * 100).toFixed(1).padStart(7)} %      ${`≥ ${throughputGoal * 100}%`.padEnd(8)}${verdict(ratio >= throughputGoal && throughput.received === throughput.sent)}`,
    // CPU time per message is what the host's steal cannot distort: it is spent, not waited for.
    `  ${'cpu per message: floor'.padEnd(34)}${cpuMs(floor.processCore, floor.seconds, floor.jobs).padStart(7)} ms`,
    `  ${'cpu per message: gateway'.padEnd(34)}${cpuMs(phases.throughput?.gatewayCore ?? NaN, throughput.seconds, throughput.received).padStart(7)} ms`,
    `  ${'floor cpu / gateway cpu'.padEnd(34)}${(100 * (floor.processCore * floor.seconds / floor.jobs) / ((phases.throughput?.gatewayCore ?? NaN) * throughput.seconds / throughput.received)).toFixed(1).padStart(7)} %`,
    '',
    `  ${`latency visitor → agent at ${latency.sendRate.toFixed(0)} msg/s`.padEnd(34)}${['p50', 'p95', 'p99', 'max'].map((h) => h.padStart(9)).join('')}`,
    row('all', latency.toAgent, `goal p99 ≤ ${p99GoalMs} ms  ${verdict(latency.toAgent.p99 <= p99GoalMs && latency.received === latency.sent)}`),
    row('first of a conversation', latency.firstOfConversation, '(ingest + routing → conversation.assigned)'),
    row('later in a conversation', latency.laterInConversation, '(message.received)'),
    row("visitor → 'accepted' frame", latency.toAccepted, '(web side: the queue add)'),
    '  stages, from the gateway\'s own timestamps (ms resolution; "assigned" = in the conversation.assigned frame):',
    ...Object.entries(latency.stages).map(([name, summary]) => row(`  ${name}`, summary).trimEnd()),
  ];
  const slow = Object.entries(latency.slowBySendTime);
  if (slow.length) lines.push(`  over ${p99GoalMs} ms, counted by send time (s into the phase): ${slow.map(([at, count]) => `${at}:${count}`).join(' ')}`);
  lines.push(
    '',
    `  floor:      ${floor.jobs} jobs in ${floor.seconds.toFixed(2)} s; cpu bench ${pct(floor.processCore)}, redis ${pct(floor.redisCore)}`,
    `  throughput: ${throughput.received}/${throughput.sent} in ${throughput.seconds.toFixed(2)} s (all accepted after ${throughput.acceptedSeconds.toFixed(2)} s), ${throughput.visitors} visitors; cpu ${load(phases.throughput, throughput.clientCore)}`,
    `  latency:    ${latency.received}/${latency.sent} received, ${latency.visitors} visitors; cpu ${load(phases.latency, latency.clientCore)}; client loop delay max ${num(latency.clientLoopDelayMaxMs)} ms`,
  );
  const errors = [...throughput.errors, ...latency.errors];
  if (errors.length) lines.push(`  visitor errors: ${errors.length} (${[...new Set(errors)].join(', ')})`);
  if (!complete) lines.push('  INCOMPLETE: not every message reached the agent before the deadline');
  console.log(lines.join('\n'));
  return { ratio, complete };
}

/** Inbound jobs the gateway under test has completed so far (its own jobs-processed counter). */
function ingestedSoFar(g: Awaited<ReturnType<typeof startGatewayUnderTest>>) {
  return async () => (await g.gateway.metrics.jobsProcessed.get()).values.find((v) => v.labels.queue === 'inbound')?.value ?? 0;
}

async function deleteKeys(redisUrl: string, prefixes: string[]) {
  const redis = createRedis(redisUrl, 'bench-cleanup');
  try {
    for (const prefix of prefixes) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.unlink(...keys);
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
}

async function main() {
  const n = Math.round(numberEnv('BENCH_N', 10000));
  const rate = numberEnv('BENCH_RATE', 200);
  const seconds = numberEnv('BENCH_SECONDS', 10);
  const roundCount = Math.round(numberEnv('BENCH_ROUNDS', 5));
  const profileDir = process.env.BENCH_CPU_PROF || undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const visitors = Math.ceil(warmupMessages / perVisitorBurst) + Math.ceil(n / perVisitorBurst) + Math.ceil(rate);
  if (visitors > agentCapacityLimit) {
    throw new Error(`BENCH_N=${n} and BENCH_RATE=${rate} need ${visitors} conversations at once; one agent takes at most ${agentCapacityLimit}`);
  }

  const benchServer = await benchRedis('redis');
  const { embedded } = benchServer;
  const redisUrl = benchServer.url;
  const run = randomBytes(3).toString('hex');
  const floorPrefix = `bench-floor-${run}`;
  const gatewayPrefix = `bench-gw-${run}`;
  const settings = benchSettings(gatewayPrefix);
  const observer = createRedis(redisUrl, 'bench-observer');
  // Our own redis-server only: record its stalls (fork, fsync, slow commands) over 10 ms.
  await benchServer.watchStalls(observer);
  if (embedded && process.env.BENCH_NO_REWRITE === '1') await observer.config('SET', 'auto-aof-rewrite-percentage', '0');
  const gatewayUnderTest = { stop: async () => {} };
  try {
    // The floor and the gateway take turns, round after round, and the verdict is the median round:
    // on a shared machine one pair of runs minutes apart says more about the neighbours than the code.
    const rounds: { floor: FloorResult; result: Awaited<ReturnType<typeof runClients>> }[] = [];
    let g: Awaited<ReturnType<typeof startGatewayUnderTest>> | undefined;
    for (let round = 0; round < roundCount; round++) {
      const last = round === roundCount - 1;
      const floor = await measureFloor({
        redisUrl, prefix: `${floorPrefix}-${round}`, count: n, warmup: Math.min(warmupMessages, n), concurrency: settings.workerConcurrency, jobLockMs: settings.jobLockMs,
      });
      if (!g) {
        g = await startGatewayUnderTest(redisUrl, gatewayPrefix);
        const started = g;
        gatewayUnderTest.stop = () => started.gateway.stop();
      }
      // A tenant per round: each round's conversations get a fresh agent with room for all of them.
      const tenant = await createBenchTenant(g, visitors + 10);
      const result = await runClients({
        url: g.url, inboxId: tenant.inboxId, agentToken: tenant.agentToken, messages: n, perVisitorBurst, warmupMessages,
        // Only the last round measures latency at full length; the others keep it short.
        rate, seconds: last ? seconds : Math.min(seconds, 1),
      }, () => new CpuMeter(observer), profileDir && last ? join(profileDir, `gateway-throughput-${run}.cpuprofile`) : undefined,
      process.env.BENCH_TIMELINE === '1' ? { observer, ingested: ingestedSoFar(g) } : undefined);
      if (result.warmupReceived < warmupMessages) console.warn(`warning: only ${result.warmupReceived}/${warmupMessages} warm-up messages reached the agent`);
      rounds.push({ floor, result });
      const t = result.throughput;
      const phase = result.phases.throughput;
      // CPU per message (process / redis) beside the rates: spent time, which the host's steal does not inflate.
      console.log(`  round ${round + 1}/${roundCount}: floor ${floor.jobsPerSecond.toFixed(0)} jobs/s (cpu ${cpuMs(floor.processCore, floor.seconds, floor.jobs)} / ${cpuMs(floor.redisCore, floor.seconds, floor.jobs)} ms), ` +
        `gateway ${t.messagesPerSecond.toFixed(0)} msg/s (cpu ${cpuMs(phase?.gatewayCore ?? NaN, t.seconds, t.received)} / ${cpuMs(phase?.redisCore ?? NaN, t.seconds, t.received)} ms), ratio ${(100 * t.messagesPerSecond / floor.jobsPerSecond).toFixed(1)} %, clients ${cpuMs(t.clientCore, t.seconds, t.received)} ms` +
        `; AOF rewrites during floor / gateway ${floor.aofRewrites} / ${phase?.aofRewrites ?? '—'} (their cpu ${pct(floor.redisChildCore)} / ${pct(phase?.redisChildCore ?? NaN)} of a core)` +
        `; AOF bytes per message ${aofPerMessage(floor.aofBytes, floor.jobs)} / ${aofPerMessage(phase?.aofBytes ?? NaN, t.received)}`);
      if (process.env.BENCH_COMMANDSTATS === '1') {
        console.log(`    floor redis: ${describeCommandStats(floor.commands, floor.jobs)}`);
        if (phase) console.log(`    gateway redis: ${describeCommandStats(phase.commands, t.received)}`);
      }
    }
    const byRatio = [...rounds].sort((a, b) => a.result.throughput.messagesPerSecond / a.floor.jobsPerSecond - b.result.throughput.messagesPerSecond / b.floor.jobsPerSecond);
    const median = byRatio[Math.floor(byRatio.length / 2)]!;
    const latest = rounds[rounds.length - 1]!;
    console.log('');
    const summary = report({
      n, rate, seconds, concurrency: settings.workerConcurrency, rounds: roundCount,
      redis: embedded ? 'embedded redis-server (AOF everysec)' : `REDIS_URL`,
    }, median.floor, median.result.throughput, latest.result.latency, { ...latest.result.phases, throughput: median.result.phases.throughput! });
    const stalls = await redisStalls(observer);
    console.log(`  redis:      ${stalls.aofRewrites} AOF rewrites, ${stalls.forks} forks (latest ${stalls.latestForkMs.toFixed(1)} ms)` +
      (embedded ? `; stalls over 10 ms: ${stalls.events.map((e) => `${e.event} max ${e.maxMs} ms`).join(', ') || 'none'}` : '') +
      (embedded && stalls.slowest.length ? `\n  redis slowest: ${stalls.slowest.map((c) => `${c.command} ${c.ms.toFixed(0)} ms`).join('; ')}` : ''));
    if (process.env.BENCH_JSON === '1') {
      console.log(JSON.stringify({ n, rate, seconds, rounds: rounds.map((r) => ({ floor: r.floor, throughput: r.result.throughput })), latency: latest.result.latency, ratio: summary.ratio }));
    }
  } finally {
    await gatewayUnderTest.stop().catch(() => undefined);
    observer.disconnect();
    if (embedded) {
      await benchServer.stop();
    } else {
      await deleteKeys(redisUrl, [...Array.from({ length: roundCount }, (_, round) => `${floorPrefix}-${round}`), gatewayPrefix]);
    }
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
