// Acceptance: kill -9 the only worker while 2,000 visitor messages are in flight; a new worker
// finishes the job and every message is stored exactly once, in send order, one conversation per visitor.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTenantOn, newDeployment, startGatewayProcess, type Deployment, type GatewayProcess } from '../support/gatewayProcess.ts';
import { wsUrl, type Tenant } from '../support/testGateway.ts';

const visitorCount = 20;
const messagesPerVisitor = 100;
// The visitor socket allows a burst of 20 messages (then 2/s), so each visitor sends through 5 tabs,
// 20 messages each, one tab after the other: fast, and still one send order per visitor.
const tabsPerVisitor = 5;
const messagesPerTab = messagesPerVisitor / tabsPerVisitor;
const totalMessages = visitorCount * messagesPerVisitor;
const killAfterAccepted = 500;

const textOf = (visitor: number, index: number) => `v${visitor}-m${String(index).padStart(3, '0')}`;

/** One visitor socket that sends frames without waiting and resolves each on its `accepted` frame. */
class VisitorTab {
  private readonly pending = new Map<string, { resolve: () => void; reject: (error: Error) => void }>();
  private welcome: ((frame: { visitorId: string; visitorToken: string }) => void) | undefined;

  private constructor(private readonly ws: WebSocket, private readonly onAccepted: () => void) {
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      if (frame.type === 'welcome') this.welcome?.(frame);
      else if (frame.type === 'accepted') {
        const waiter = this.pending.get(frame.clientMessageId);
        this.pending.delete(frame.clientMessageId);
        waiter?.resolve();
        this.onAccepted();
      } else if (frame.type === 'error') {
        const error = new Error(`visitor socket error frame: ${JSON.stringify(frame)}`);
        for (const waiter of this.pending.values()) waiter.reject(error);
        this.pending.clear();
      }
    });
    ws.on('close', (code) => {
      const error = new Error(`visitor socket closed (${code}) with ${this.pending.size} messages unanswered`);
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    });
  }

  static async open(url: string, hello: Record<string, unknown>, onAccepted: () => void): Promise<{ tab: VisitorTab; visitorId: string; visitorToken: string }> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    const tab = new VisitorTab(ws, onAccepted);
    const welcome = new Promise<{ visitorId: string; visitorToken: string }>((resolve, reject) => {
      tab.welcome = resolve;
      setTimeout(() => reject(new Error('no welcome within 15 s')), 15_000).unref();
    });
    ws.send(JSON.stringify({ type: 'hello', ...hello }));
    const { visitorId, visitorToken } = await welcome;
    return { tab, visitorId, visitorToken };
  }

  /** Sends every message at once (pipelined) and resolves when all are accepted. */
  sendAll(messages: { clientMessageId: string; text: string }[]): Promise<void[]> {
    return Promise.all(messages.map((m) => new Promise<void>((resolve, reject) => {
      this.pending.set(m.clientMessageId, { resolve, reject });
      this.ws.send(JSON.stringify({ type: 'message', ...m }));
    })));
  }

  close() { this.ws.close(); }
}

describe('killing a worker mid-flight (separate processes)', () => {
  let deployment: Deployment;
  let web: GatewayProcess;
  let worker: GatewayProcess;
  let replacement: GatewayProcess | undefined;
  let tenant: Tenant;
  let redis: Redis;
  const tabs: VisitorTab[] = [];

  beforeAll(async () => {
    deployment = newDeployment();
    [web, worker] = await Promise.all([startGatewayProcess(deployment, 'web'), startGatewayProcess(deployment, 'worker')]);
    tenant = await createTenantOn(web);
    redis = new Redis(deployment.redisUrl);
  });

  afterAll(async () => {
    for (const tab of tabs) tab.close();
    await Promise.all([web, worker, replacement].map((p) => p?.stop()));
    redis?.disconnect();
    deployment?.cleanup();
  });

  async function storedCount(): Promise<number> {
    const conversationIds = await redis.zrange(`${deployment.prefix}:acc:${tenant.accountId}:conversations`, '0', '-1');
    const pipeline = redis.pipeline();
    for (const id of conversationIds) pipeline.zcard(`${deployment.prefix}:conv:${id}:msgs`);
    const results = (await pipeline.exec()) ?? [];
    return results.reduce((sum, [, n]) => sum + Number(n), 0);
  }

  async function allPages<T>(path: string): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const separator = path.includes('?') ? '&' : '?';
      const page: { status: number; body: { items: T[]; nextCursor: string | null } } = await web.api('GET', `${path}${separator}limit=200${cursor ? `&cursor=${cursor}` : ''}`, { key: tenant.apiKey });
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      items.push(...page.body.items);
      cursor = page.body.nextCursor;
    } while (cursor);
    return items;
  }

  it('stores all 2,000 messages exactly once and in order after the worker is killed with SIGKILL', async () => {
    const runId = Date.now().toString(36);
    let accepted = 0;
    let takeover: Promise<void> | undefined;
    let inFlightAtKill = { accepted: 0, stored: 0, active: 0 };
    const onAccepted = () => {
      accepted++;
      if (accepted < killAfterAccepted || takeover) return;
      takeover = (async () => {
        worker.kill('SIGKILL');
        const exit = await worker.exited;
        expect(exit.signal).toBe('SIGKILL');
        const active = await redis.llen(`${deployment.prefix}:q:inbound:active`);
        inFlightAtKill = { accepted, stored: await storedCount(), active };
        replacement = await startGatewayProcess(deployment, 'worker');
      })();
    };

    // Every tab is open before the first message, so sending is not slowed by connecting.
    const socketUrl = wsUrl(web.url, `/webchat/${tenant.inboxId}/ws`);
    const visitorTabs = await Promise.all(Array.from({ length: visitorCount }, async (_, v) => {
      const first = await VisitorTab.open(socketUrl, { name: `Visitor ${v}` }, onAccepted);
      const more = await Promise.all(Array.from({ length: tabsPerVisitor - 1 }, () =>
        VisitorTab.open(socketUrl, { visitorId: first.visitorId, visitorToken: first.visitorToken }, onAccepted)));
      const all = [first.tab, ...more.map((m) => m.tab)];
      tabs.push(...all);
      return { visitorId: first.visitorId, tabs: all };
    }));

    await Promise.all(visitorTabs.map(async ({ tabs: own }, v) => {
      for (let t = 0; t < tabsPerVisitor; t++) {
        await own[t]!.sendAll(Array.from({ length: messagesPerTab }, (_, i) => {
          const index = t * messagesPerTab + i;
          return { clientMessageId: `${runId}-${textOf(v, index)}`, text: textOf(v, index) };
        }));
      }
    }));
    expect(accepted).toBe(totalMessages);
    expect(takeover).toBeDefined();
    await takeover;
    // The kill happened with work still to do: most messages were not stored yet.
    expect(inFlightAtKill.stored).toBeLessThan(totalMessages);

    const deadline = Date.now() + 60_000;
    let stored = await storedCount();
    while (stored < totalMessages && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      stored = await storedCount();
    }
    const inbound = new Queue('inbound', { connection: redis, prefix: `${deployment.prefix}:q` });
    try {
      const counts = await inbound.getJobCounts('failed', 'wait', 'active', 'delayed', 'prioritized');
      expect(stored, `stored ${stored}; inbound jobs ${JSON.stringify(counts)}; new worker output:\n${replacement?.output()}`).toBe(totalMessages);
      expect(counts.failed).toBe(0);
    } finally {
      await inbound.close();
    }

    // Through the API: one conversation per visitor, 100 messages each, distinct, in send order.
    const conversations = await allPages<{ id: string; contactId: string }>(`/api/v1/accounts/${tenant.accountId}/conversations`);
    expect(conversations).toHaveLength(visitorCount);
    const visitorIndex = new Map(visitorTabs.map((t, v) => [t.visitorId, v]));
    const seenVisitors = new Set<number>();
    const seenMessageIds = new Set<string>();
    for (const conversation of conversations) {
      const messages = await allPages<{ id: string; seq: number; direction: string; from: { channelId: string }; content: { text: string } }>(
        `/api/v1/accounts/${tenant.accountId}/conversations/${conversation.id}/messages`);
      const owner = visitorIndex.get(messages[0]!.from.channelId);
      expect(owner).toBeDefined();
      expect(seenVisitors.has(owner!)).toBe(false);
      seenVisitors.add(owner!);
      expect(messages.every((m) => m.from.channelId === messages[0]!.from.channelId && m.direction === 'inbound')).toBe(true);
      expect(messages.map((m) => m.content.text)).toEqual(Array.from({ length: messagesPerVisitor }, (_, i) => textOf(owner!, i)));
      const seqs = messages.map((m) => m.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(messagesPerVisitor);
      for (const m of messages) seenMessageIds.add(m.id);
    }
    expect(seenVisitors.size).toBe(visitorCount);
    expect(seenMessageIds.size).toBe(totalMessages);
    const stalledEvents = (await redis.xrange(`${deployment.prefix}:q:inbound:events`, '-', '+'))
      .filter(([, fields]) => fields[1] === 'stalled').length;
    console.info(`killWorker: worker killed after ${inFlightAtKill.accepted} accepted, ${inFlightAtKill.stored} stored, ${inFlightAtKill.active} active; ${stalledEvents} stalled events`);
  }, 90_000);
});
