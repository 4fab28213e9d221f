// The benchmark's visitors and agent, in a child process of their own (as real clients are elsewhere):
// connects them, runs the throughput and the fixed-rate latency phases, and reports back over IPC.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { z } from 'zod';
import { underlyingSocket } from '../src/live/liveFeed.ts';
import { summarizeLatency, type LatencySummary } from './stats.ts';

export const loadConfigSchema = z.object({
  url: z.string(),
  inboxId: z.string(),
  agentToken: z.string(),
  messages: z.number().int().positive(),
  perVisitorBurst: z.number().int().positive(),
  warmupMessages: z.number().int().nonnegative(),
  rate: z.number().positive(),
  seconds: z.number().positive(),
});
export type LoadConfig = z.infer<typeof loadConfigSchema>;

export interface ThroughputResult {
  visitors: number; sent: number; accepted: number; received: number; errors: string[];
  seconds: number; acceptedSeconds: number; messagesPerSecond: number; clientCore: number;
}
export interface LatencyResult {
  visitors: number; sent: number; received: number; errors: string[]; targetRate: number; sendRate: number;
  toAgent: LatencySummary; firstOfConversation: LatencySummary; laterInConversation: LatencySummary; toAccepted: LatencySummary; clientCore: number;
  /** Where the time goes, from the gateway's own timestamps (ms resolution) against the send time. */
  stages: Record<string, LatencySummary>;
  /** The clients' own event loop: a stall here shows up as latency the gateway did not cause. */
  clientLoopDelayMaxMs: number;
  /** Messages slower than the goal, counted by the half second of the phase they were sent in. */
  slowBySendTime: Record<string, number>;
}
export type ParentMessage = { type: 'start'; config: LoadConfig } | { type: 'phase-ready' };
export type ChildMessage =
  | { type: 'phase'; name: string; edge: 'start' | 'end' }
  | { type: 'result'; warmupReceived: number; throughput: ThroughputResult; latency: LatencyResult }
  | { type: 'failed'; error: string };

const wsBase = (httpUrl: string) => httpUrl.replace(/^http/, 'ws');
// Throughput phase: each visitor's frames of this many rounds go out in one write.
const roundsPerWrite = 4;

class VisitorClient {
  visitorId = '';
  readonly errors: string[] = [];
  private constructor(private readonly ws: WebSocket, private readonly onAccepted: (clientMessageId: string) => void) {}

  static async open(url: string, inboxId: string, name: string, onAccepted: (clientMessageId: string) => void): Promise<VisitorClient> {
    const ws = new WebSocket(`${wsBase(url)}/webchat/${inboxId}/ws`);
    const client = new VisitorClient(ws, onAccepted);
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    const welcomed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no welcome within 15 s')), 15_000);
      ws.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as { type: string; visitorId?: string; clientMessageId?: string; code?: string };
        if (frame.type === 'welcome') { client.visitorId = frame.visitorId!; clearTimeout(timer); resolve(); }
        else if (frame.type === 'accepted') client.onAccepted(frame.clientMessageId!);
        else if (frame.type === 'error') client.errors.push(frame.code ?? 'error');
      });
    });
    ws.send(JSON.stringify({ type: 'hello', name }));
    await welcomed;
    return client;
  }

  send(clientMessageId: string, text: string) { this.ws.send(JSON.stringify({ type: 'message', clientMessageId, text })); }
  /** Frames sent from cork() to uncork() leave this client in one write. */
  cork() { underlyingSocket(this.ws)?.cork(); }
  uncork() { underlyingSocket(this.ws)?.uncork(); }
  close() { this.ws.close(); }
}

/** The gateway's timestamps carried by what the agent sees: accepted (receivedAt), stored (ingest), assigned. */
interface GatewayStamps { acceptedAt?: string; ingestedAt?: string; assignedAt?: string }
type Arrival = (externalId: string, messageId: string, stamps: GatewayStamps) => void;

async function openAgent(url: string, token: string, onArrival: Arrival): Promise<WebSocket> {
  const ws = new WebSocket(`${wsBase(url)}/api/v1/agent/ws`, { headers: { authorization: `Bearer ${token}` } });
  const hello = new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as {
        type: string; event?: { type: string; time: string; data: { id: string; externalId?: string; receivedAt?: string; createdAt?: string } };
        messages?: { id: string; direction: string; externalId?: string; receivedAt?: string; seq: number }[];
      };
      if (frame.type === 'hello') return resolve();
      const event = frame.event;
      if (frame.type !== 'event' || !event) return;
      if (event.type === 'message.received' && event.data.externalId) {
        onArrival(event.data.externalId, event.data.id, { acceptedAt: event.data.receivedAt, ingestedAt: event.time });
      }
      // A conversation is created by the ingest of its first message, so its createdAt is that message's ingest time.
      const firstSeq = Math.min(...(frame.messages ?? []).map((m) => m.seq));
      for (const m of frame.messages ?? []) {
        if (m.direction !== 'inbound' || !m.externalId) continue;
        onArrival(m.externalId, m.id, { acceptedAt: m.receivedAt, ingestedAt: m.seq === firstSeq ? event.data.createdAt : undefined, assignedAt: event.time });
      }
    });
  });
  await hello;
  return ws;
}

/** What was sent and is awaited at the agent: send time by external id, each message counted once by its id. */
class Tracker {
  private readonly pending = new Map<string, { sentAt: number; sentEpoch: number; first: boolean }>();
  private readonly seen = new Set<string>();
  private readonly acceptPending = new Map<string, number>();
  received = 0;
  accepted = 0;
  lastArrivalAt = 0;
  lastAcceptedAt = 0;
  toAgent: number[] = [];
  firstOfConversation: number[] = [];
  laterInConversation: number[] = [];
  toAccepted: number[] = [];
  stages: Record<string, number[]> = {};
  /** [send time, latency] of every message, to tell a stall (slow ones bunched in time) from steady slowness. */
  timeline: [number, number][] = [];
  private target = Infinity;
  private reached: (() => void) | undefined;

  reset(target: number): Promise<void> {
    this.received = 0; this.accepted = 0; this.lastArrivalAt = 0; this.lastAcceptedAt = 0;
    this.toAgent = []; this.firstOfConversation = []; this.laterInConversation = []; this.toAccepted = []; this.stages = {}; this.timeline = [];
    // A straggler of an earlier phase must not count in this one.
    this.pending.clear(); this.acceptPending.clear();
    this.target = target;
    return new Promise((resolve) => { this.reached = resolve; });
  }

  sent(visitorId: string, clientMessageId: string, first: boolean) {
    const now = performance.now();
    this.pending.set(`${visitorId}/${clientMessageId}`, { sentAt: now, sentEpoch: performance.timeOrigin + now, first });
    this.acceptPending.set(clientMessageId, now);
  }

  onAccepted = (clientMessageId: string) => {
    const sentAt = this.acceptPending.get(clientMessageId);
    if (sentAt === undefined) return;
    this.acceptPending.delete(clientMessageId);
    this.lastAcceptedAt = performance.now();
    this.toAccepted.push(this.lastAcceptedAt - sentAt);
    this.accepted += 1;
  };

  private stage(name: string, from: number, to: number) {
    if (Number.isFinite(from) && Number.isFinite(to)) (this.stages[name] ??= []).push(to - from);
  }

  onArrival: Arrival = (externalId, messageId, stamps) => {
    if (this.seen.has(messageId)) return;
    this.seen.add(messageId);
    const sent = this.pending.get(externalId);
    if (!sent) return;
    this.pending.delete(externalId);
    this.lastArrivalAt = performance.now();
    const latency = this.lastArrivalAt - sent.sentAt;
    this.toAgent.push(latency);
    this.timeline.push([sent.sentAt, latency]);
    (sent.first ? this.firstOfConversation : this.laterInConversation).push(latency);
    const arrivedEpoch = performance.timeOrigin + this.lastArrivalAt;
    const accepted = Date.parse(stamps.acceptedAt ?? '');
    const ingested = Date.parse(stamps.ingestedAt ?? '');
    const assigned = Date.parse(stamps.assignedAt ?? '');
    this.stage('visitor → web accept', sent.sentEpoch, accepted);
    this.stage('web accept → stored', accepted, ingested);
    if (stamps.assignedAt) {
      this.stage('stored → assigned', ingested, assigned);
      this.stage('assigned → agent', assigned, arrivedEpoch);
    } else {
      this.stage('stored → agent (event)', ingested, arrivedEpoch);
    }
    this.received += 1;
    if (this.received === this.target) this.reached?.();
  };
}

async function openVisitors(config: LoadConfig, count: number, tag: string, tracker: Tracker): Promise<VisitorClient[]> {
  const visitors: VisitorClient[] = [];
  // A few at a time: a connect storm would measure the handshake, not the pipeline.
  for (let i = 0; i < count; i += 25) {
    const batch = Array.from({ length: Math.min(25, count - i) }, (_, j) => VisitorClient.open(config.url, config.inboxId, `${tag} ${i + j}`, tracker.onAccepted));
    visitors.push(...(await Promise.all(batch)));
  }
  return visitors;
}

const withTimeout = (promise: Promise<void>, ms: number) =>
  Promise.race([promise, new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function slowBySendTime(timeline: [number, number][], started: number, thresholdMs: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [sentAt, latency] of timeline) {
    if (latency <= thresholdMs) continue;
    const bucket = (Math.floor((sentAt - started) / 500) / 2).toFixed(1);
    counts[bucket] = (counts[bucket] ?? 0) + 1;
  }
  return counts;
}

let phaseReady: (() => void) | undefined;
async function phase<T>(name: string, body: () => Promise<T>): Promise<T> {
  const ready = new Promise<void>((resolve) => { phaseReady = resolve; });
  process.send!({ type: 'phase', name, edge: 'start' } satisfies ChildMessage);
  await ready;
  try {
    return await body();
  } finally {
    process.send!({ type: 'phase', name, edge: 'end' } satisfies ChildMessage);
  }
}

const coreShare = (since: NodeJS.CpuUsage, wallMs: number) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000 / wallMs;
};

async function run(config: LoadConfig): Promise<Extract<ChildMessage, { type: 'result' }>> {
  const tracker = new Tracker();
  const agent = await openAgent(config.url, config.agentToken, tracker.onArrival);
  const burst = config.perVisitorBurst;
  const warmupVisitors = await openVisitors(config, Math.ceil(config.warmupMessages / burst), 'Warmup', tracker);
  const throughputVisitors = await openVisitors(config, Math.ceil(config.messages / burst), 'Throughput', tracker);
  // One message a second per visitor keeps every socket far inside its rate limit (2/s, burst 20).
  const latencyVisitors = await openVisitors(config, Math.ceil(config.rate), 'Latency', tracker);

  // Warm-up: the JIT, the scripts and the connections, not measured.
  const warmed = tracker.reset(config.warmupMessages);
  for (let i = 0; i < config.warmupMessages; i += 1) {
    const visitor = warmupVisitors[i % warmupVisitors.length]!;
    tracker.sent(visitor.visitorId, `w${i}`, i < warmupVisitors.length);
    visitor.send(`w${i}`, `warm-up message ${i}`);
  }
  await withTimeout(warmed, 30_000);
  const warmupReceived = tracker.received;
  await sleep(500);

  const throughput = await phase('throughput', async (): Promise<ThroughputResult> => {
    const done = tracker.reset(config.messages);
    const cpu = process.cpuUsage();
    const started = performance.now();
    // Message i goes to visitor i mod K: every conversation starts in the first round, as in a busy minute.
    // Each visitor's frames of a block of rounds leave in one write: one write per frame was most of these
    // clients' own CPU, taken from the cores the gateway and Redis share with them.
    const block = throughputVisitors.length * roundsPerWrite;
    for (let from = 0; from < config.messages; from += block) {
      for (const visitor of throughputVisitors) visitor.cork();
      for (let i = from; i < Math.min(config.messages, from + block); i += 1) {
        const visitor = throughputVisitors[i % throughputVisitors.length]!;
        tracker.sent(visitor.visitorId, `t${i}`, i < throughputVisitors.length);
        visitor.send(`t${i}`, `throughput message ${i}`);
      }
      for (const visitor of throughputVisitors) visitor.uncork();
    }
    await withTimeout(done, Math.max(90_000, config.messages * 20));
    const end = tracker.received === config.messages ? tracker.lastArrivalAt : performance.now();
    const seconds = (end - started) / 1000;
    return {
      visitors: throughputVisitors.length, sent: config.messages, accepted: tracker.accepted, received: tracker.received,
      errors: throughputVisitors.flatMap((v) => v.errors.splice(0)),
      seconds, acceptedSeconds: (tracker.lastAcceptedAt - started) / 1000, messagesPerSecond: tracker.received / seconds,
      clientCore: coreShare(cpu, end - started),
    };
  });
  // Let the rate buckets of the latency visitors and the gateway settle.
  await sleep(1500);

  const latency = await phase('latency', async (): Promise<LatencyResult> => {
    const total = Math.round(config.rate * config.seconds);
    const done = tracker.reset(total);
    const cpu = process.cpuUsage();
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const started = performance.now();
    let sent = 0;
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * config.rate));
        for (; sent < due; sent += 1) {
          const visitor = latencyVisitors[sent % latencyVisitors.length]!;
          tracker.sent(visitor.visitorId, `l${sent}`, sent < latencyVisitors.length);
          visitor.send(`l${sent}`, `latency message ${sent}`);
        }
        if (sent >= total) { clearInterval(tick); resolve(); }
      }, 2);
    });
    const sendSeconds = (performance.now() - started) / 1000;
    await withTimeout(done, 30_000);
    loopDelay.disable();
    return {
      clientLoopDelayMaxMs: loopDelay.max / 1e6,
      visitors: latencyVisitors.length, sent, received: tracker.received,
      errors: latencyVisitors.flatMap((v) => v.errors.splice(0)),
      targetRate: config.rate, sendRate: sent / sendSeconds,
      toAgent: summarizeLatency(tracker.toAgent), firstOfConversation: summarizeLatency(tracker.firstOfConversation),
      laterInConversation: summarizeLatency(tracker.laterInConversation), toAccepted: summarizeLatency(tracker.toAccepted),
      slowBySendTime: slowBySendTime(tracker.timeline, started, 50),
      stages: Object.fromEntries(Object.entries(tracker.stages).map(([name, samples]) => [name, summarizeLatency(samples)])),
      clientCore: coreShare(cpu, performance.now() - started),
    };
  });

  for (const visitor of [...warmupVisitors, ...throughputVisitors, ...latencyVisitors]) visitor.close();
  agent.close();
  return { type: 'result', warmupReceived, throughput, latency };
}

// Without the benchmark there is nothing to report to: do not linger on open sockets.
process.on('disconnect', () => process.exit(0));
process.on('message', (message: ParentMessage) => {
  if (message.type === 'phase-ready') return phaseReady?.();
  if (message.type !== 'start') return;
  run(loadConfigSchema.parse(message.config))
    .then((result) => process.send!(result satisfies ChildMessage))
    .catch((error: Error) => process.send!({ type: 'failed', error: error.stack ?? error.message } satisfies ChildMessage))
    .finally(() => { if (process.connected) process.disconnect(); });
});
