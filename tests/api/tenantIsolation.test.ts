// Tenant isolation, walked over every declared account-scoped route: another tenant's credentials
// find nothing (404), and nothing in Redis changes. The walk is generated from the route list, so a
// new route is covered (or fails loudly for want of an id or a body) the day it is added.
import { Redis } from 'ioredis';
import { mediaKeyFor } from '../../src/media/mediaStore.ts';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteSpec } from '../../src/http/apiRoutes.ts';
import { createTenant, redisUrl, startTestGateway, TestSocket, wsUrl, type TestGateway } from '../support/testGateway.ts';

/** A tenant with some of everything: ids by the name of the path parameter that takes them. */
interface PopulatedTenant {
  apiKey: string;
  agentToken: string;
  ids: Record<string, string>;
}

const accountBase = '/api/v1/accounts/:accountId';
const routeName = (r: RouteSpec) => `${r.method.toUpperCase()} ${r.path}`;

/** A plausible valid body for each write route; `target` is the account the request is aimed at. */
const validBodies: Record<string, (target: PopulatedTenant) => unknown> = {
  'POST /api/v1/accounts': () => ({ name: 'Intruder Inc' }),
  'PATCH /api/v1/accounts/:accountId': () => ({ status: 'disabled' }),
  'POST /api/v1/accounts/:accountId/keys': () => ({ name: 'stolen key' }),
  'POST /api/v1/accounts/:accountId/inboxes': () => ({ type: 'webchat', name: 'Intruder chat', settings: { allowedOrigins: ['*'] }, credentials: {} }),
  'PATCH /api/v1/accounts/:accountId/inboxes/:inboxId': () => ({ name: 'Renamed', enabled: false }),
  'POST /api/v1/accounts/:accountId/inboxes/:inboxId/sms/segments': () => ({ text: 'How long is this?' }),
  'POST /api/v1/accounts/:accountId/agents': () => ({ name: 'Mallory', capacity: 3 }),
  'PATCH /api/v1/accounts/:accountId/agents/:agentId': () => ({ name: 'Mallory', capacity: 0 }),
  'PUT /api/v1/accounts/:accountId/agents/:agentId/status': () => ({ status: 'offline' }),
  'POST /api/v1/accounts/:accountId/teams': (target) => ({ name: 'Intruders', agentIds: [target.ids.agentId] }),
  'PATCH /api/v1/accounts/:accountId/teams/:teamId': (target) => ({ name: 'Renamed', agentIds: [target.ids.agentId] }),
  'PUT /api/v1/accounts/:accountId/routing': () => ({ strategy: 'least_busy' }),
  'PATCH /api/v1/accounts/:accountId/contacts/:contactId': () => ({ name: 'Renamed', attributes: { vip: true } }),
  'POST /api/v1/accounts/:accountId/conversations/:conversationId/messages': () => ({ text: 'Injected reply' }),
  'POST /api/v1/accounts/:accountId/conversations/:conversationId/assign': (target) => ({ agentId: target.ids.agentId, force: true }),
  'POST /api/v1/accounts/:accountId/conversations/:conversationId/transfer': (target) => ({ agentId: target.ids.agentId, note: 'take it', force: true }),
  'POST /api/v1/accounts/:accountId/conversations/:conversationId/accept': (target) => ({ agentId: target.ids.agentId }),
  'POST /api/v1/accounts/:accountId/conversations/:conversationId/decline': (target) => ({ agentId: target.ids.agentId }),
  'POST /api/v1/accounts/:accountId/webhooks': () => ({ url: 'https://evil.example/hook', events: ['*'] }),
  'PATCH /api/v1/accounts/:accountId/webhooks/:webhookId': () => ({ url: 'https://evil.example/hook', enabled: true }),
  'POST /api/v1/accounts/:accountId/webhooks/:webhookId/rotate-secret': () => ({ overlapSeconds: 60 }),
  'POST /api/v1/accounts/:accountId/inboxes/:inboxId/messages': (target) => ({ to: { contactId: target.ids.contactId }, text: 'Injected CRM message' }),
  // No channel identity: an external id the account does not know is a 404, never a new contact.
  'PUT /api/v1/accounts/:accountId/contacts/by-external-id/:externalId': () => ({ name: 'Renamed', attributes: { vip: true } }),
  'POST /api/v1/accounts/:accountId/conversations/:conversationId/notes': () => ({ text: 'Injected note' }),
  'POST /api/v1/accounts/:accountId/conversations/:conversationId/tags': () => ({ add: ['injected'], remove: ['vip'] }),
};

function fillPath(path: string, ids: Record<string, string>): string {
  return path.replace(/:([A-Za-z]+)/g, (_m, name: string) => {
    const id = ids[name];
    if (!id) throw new Error(`the isolation walk has no id for :${name} in ${path}: add that kind to populate()`);
    return encodeURIComponent(id);
  });
}

function bodyFor(route: RouteSpec, target: PopulatedTenant): unknown {
  if (!route.body) return undefined;
  const make = validBodies[routeName(route)];
  if (!make) throw new Error(`the isolation walk has no valid body for ${routeName(route)}: add one to validBodies`);
  return make(target);
}

async function populate(t: TestGateway): Promise<PopulatedTenant> {
  const tenant = await createTenant(t);
  const { accountId, apiKey } = tenant;
  const base = `/api/v1/accounts/${accountId}`;
  const created = async (path: string, body: unknown) => {
    const r = await t.api('POST', `${base}${path}`, { key: apiKey, body });
    if (r.status !== 201) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  // Subscribed to an event the walk never causes, so no delivery is in flight while Redis is compared.
  const webhook = await created('/webhooks', { url: 'http://127.0.0.1:9/hook', events: ['conversation.resolved'] });
  const team = await created('/teams', { name: 'Support', agentIds: [tenant.agentId] });
  const secondKey = await created('/keys', { name: 'second' });

  const visitor = await TestSocket.open(wsUrl(t.url, `/webchat/${tenant.inboxId}/ws`));
  visitor.send({ type: 'hello', name: 'Vic' });
  await visitor.next((f) => f.type === 'welcome');
  visitor.send({ type: 'message', clientMessageId: 'c1', text: 'Where is my parcel?' });
  await visitor.next((f) => f.type === 'accepted');
  let conversation: { id: string; contactId: string; assigneeId: string | null } | undefined;
  for (let i = 0; i < 200 && !conversation?.assigneeId; i++) {
    const list = await t.api('GET', `${base}/conversations`, { key: apiKey });
    conversation = list.body.items[0];
    if (!conversation?.assigneeId) await new Promise((r) => setTimeout(r, 100));
  }
  if (!conversation?.assigneeId) throw new Error('the visitor message did not become an assigned conversation');
  visitor.close();
  // The CRM's own id for the contact, a note and a tag: what the CRM routes act on.
  const externalId = `crm-${conversation.contactId}`;
  const contact = await t.api('GET', `${base}/contacts/${conversation.contactId}`, { key: apiKey });
  const linked = await t.api('PUT', `${base}/contacts/by-external-id/${externalId}`, { key: apiKey, body: { inboxId: tenant.inboxId, channelId: contact.body.channelId } });
  if (linked.status !== 200) throw new Error(`external id: ${linked.status} ${JSON.stringify(linked.body)}`);
  await t.api('POST', `${base}/conversations/${conversation.id}/notes`, { key: apiKey, body: { text: 'VIP' } });
  await t.api('POST', `${base}/conversations/${conversation.id}/tags`, { key: apiKey, body: { add: ['vip'] } });

  return {
    apiKey, agentToken: tenant.agentToken,
    ids: {
      accountId, inboxId: tenant.inboxId, agentId: tenant.agentId, keyId: secondKey.apiKey.id, teamId: team.id, queueId: team.id,
      webhookId: webhook.id, conversationId: conversation.id, contactId: conversation.contactId,
      deliveryId: `evt_${conversation.id}_c`,
      mediaKey: mediaKeyFor(accountId, 'walk-medium'), externalId,
    },
  };
}

type RedisSnapshot = Map<string, string>;

/** Every key under the prefix with its type and logical value (streams by entries, not consumer-group bookkeeping). */
async function snapshot(redis: Redis, prefix: string, ignore: (key: string) => boolean): Promise<RedisSnapshot> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', '1000');
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  const result: RedisSnapshot = new Map();
  for (const key of keys.sort()) {
    if (ignore(key)) continue;
    const type = await redis.type(key);
    let value: unknown;
    switch (type) {
      case 'string': value = await redis.getBuffer(key).then((b) => b?.toString('base64')); break;
      case 'hash': value = Object.entries(await redis.hgetall(key)).sort(); break;
      case 'list': value = await redis.lrange(key, 0, -1); break;
      case 'set': value = (await redis.smembers(key)).sort(); break;
      case 'zset': value = await redis.zrange(key, '0', '-1', 'WITHSCORES'); break;
      case 'stream': value = await redis.xrange(key, '-', '+'); break;
      case 'none': continue; // expired between SCAN and TYPE
      default: value = (await redis.dumpBuffer(key))?.toString('base64');
    }
    result.set(key, `${type} ${JSON.stringify(value)}`);
  }
  return result;
}

function differences(before: RedisSnapshot, after: RedisSnapshot): string[] {
  const changed: string[] = [];
  for (const [key, value] of after) {
    if (!before.has(key)) changed.push(`added ${key}: ${value.slice(0, 200)}`);
    else if (before.get(key) !== value) changed.push(`changed ${key}: ${before.get(key)!.slice(0, 200)} -> ${value.slice(0, 200)}`);
  }
  for (const key of before.keys()) if (!after.has(key)) changed.push(`removed ${key}`);
  return changed;
}

describe('tenant isolation over every account-scoped route', () => {
  let t: TestGateway;
  let a: PopulatedTenant;
  let b: PopulatedTenant;
  let inspector: Redis;
  let accountRoutes: RouteSpec[];
  let ignoredKey: (key: string) => boolean;
  let before: RedisSnapshot;

  beforeAll(async () => {
    // B's agent opens its own socket below; with presence following sockets, that lease would be a (legitimate)
    // write to B's own agent state. Off here, so that any write at all shows.
    t = await startTestGateway({ GATEWAY_AGENT_DISCONNECT_GRACE_SECONDS: '0' });
    inspector = new Redis(redisUrl(), { lazyConnect: false, maxRetriesPerRequest: 3 });
    a = await populate(t);
    b = await populate(t);
    accountRoutes = t.gateway.routes.filter((r) => r.path.startsWith(accountBase) && r.auth !== 'platform');
    // Keys the running workers rewrite on their own, whatever the API does: the worker heartbeat
    // zset and BullMQ's stalled-check marker.
    ignoredKey = (key) => key === `${t.prefix}:workers` || key.endsWith(':stalled-check');
    // Let the pipeline settle (ingest, routing, events) before taking the reference picture.
    for (let i = 0; i < 100; i++) {
      const counts = await Promise.all(Object.values(t.gateway.queues).map((q) => q.getJobCounts('waiting', 'active', 'delayed', 'prioritized')));
      if (counts.every((c) => Object.values(c).every((n) => n === 0))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 300));
    before = await snapshot(inspector, t.prefix, ignoredKey);
  });

  afterAll(async () => {
    inspector?.disconnect();
    await t?.stop();
  });

  it('finds the account-scoped routes, each with ids and a valid body', () => {
    expect(accountRoutes.length).toBeGreaterThan(30);
    for (const route of [...accountRoutes, ...t.gateway.routes.filter((r) => r.auth === 'platform')]) {
      fillPath(route.path, a.ids);
      const body = bodyFor(route, a);
      if (route.body) {
        const parsed = route.body.safeParse(body);
        expect(parsed.success, `${routeName(route)}: the walk's body is not valid: ${parsed.error?.message}`).toBe(true);
      }
    }
  });

  it("answers 404 to tenant B's API key and agent token on every route aimed at account A", async () => {
    const failures: string[] = [];
    const credentials = { 'B api key': b.apiKey, 'B agent token': b.agentToken };
    // A's ids are the real target; B's ids under A's account id are the confused variant.
    const idSets = { "A's ids": a.ids, "B's ids under account A": { ...b.ids, accountId: a.ids.accountId! } };
    let requests = 0;
    for (const route of accountRoutes) {
      for (const [credentialName, key] of Object.entries(credentials)) {
        for (const [idSetName, ids] of Object.entries(idSets)) {
          const r = await t.api(route.method.toUpperCase(), fillPath(route.path, ids), { key, body: bodyFor(route, a) });
          requests++;
          if (r.status !== 404) failures.push(`${routeName(route)} with ${credentialName}, ${idSetName}: ${r.status} ${JSON.stringify(r.body)}`);
          else expect(r.body.error.code).toBe('not_found');
        }
      }
    }
    expect(failures).toEqual([]);
    expect(requests).toBe(accountRoutes.length * 4);
  });

  it("answers 404 to A's own key when a path names B's records under A's account", async () => {
    const failures: string[] = [];
    const crossRoutes = accountRoutes.filter((r) => r.path.replace(accountBase, '').includes('/:'));
    expect(crossRoutes.length).toBeGreaterThan(15);
    for (const route of crossRoutes) {
      for (const [credentialName, key] of Object.entries({ 'A api key': a.apiKey, 'A agent token': a.agentToken })) {
        // Agent tokens only reach accountOrAgent routes; the others answer 403 before any lookup.
        if (credentialName === 'A agent token' && route.auth !== 'accountOrAgent') continue;
        const path = fillPath(route.path, { ...b.ids, accountId: a.ids.accountId! });
        const r = await t.api(route.method.toUpperCase(), path, { key, body: bodyFor(route, a) });
        if (r.status !== 404) failures.push(`${routeName(route)} with ${credentialName}: ${r.status} ${JSON.stringify(r.body)}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it("refuses B's agent as a member or assignee in account A (400, nothing stored)", async () => {
    const base = `/api/v1/accounts/${a.ids.accountId}`;
    const team = await t.api('POST', `${base}/teams`, { key: a.apiKey, body: { name: 'Mixed', agentIds: [b.ids.agentId] } });
    expect(team.status).toBe(400);
    const patched = await t.api('PATCH', `${base}/teams/${a.ids.teamId}`, { key: a.apiKey, body: { agentIds: [b.ids.agentId] } });
    expect(patched.status).toBe(400);
    for (const action of ['assign', 'transfer']) {
      const r = await t.api('POST', `${base}/conversations/${a.ids.conversationId}/${action}`, { key: a.apiKey, body: { agentId: b.ids.agentId, force: true } });
      expect(r.status, action).toBe(400);
    }
  });

  it("answers not_found to B's agent socket acting on A's conversation", async () => {
    const agent = await TestSocket.open(wsUrl(t.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${b.agentToken}` } });
    await agent.next((f) => f.type === 'hello');
    const conversationId = a.ids.conversationId!;
    const frames = [
      { type: 'reply', conversationId, text: 'Injected over the socket', clientMessageId: 'x1' },
      { type: 'typing', conversationId, on: true },
      { type: 'resolve', conversationId },
    ];
    for (const frame of frames) {
      agent.send(frame);
      const error = await agent.next((f) => f.type === 'error');
      expect(error.code, frame.type).toBe('not_found');
    }
    agent.close();
  });

  it('answers 403 to account keys and agent tokens on platform-only routes', async () => {
    const platformRoutes = t.gateway.routes.filter((r) => r.auth === 'platform' && r.handler);
    expect(platformRoutes.map(routeName).sort()).toEqual(expect.arrayContaining(['GET /api/v1/accounts', 'POST /api/v1/accounts']));
    const failures: string[] = [];
    for (const route of platformRoutes) {
      for (const [credentialName, key] of Object.entries({ 'B api key': b.apiKey, 'B agent token': b.agentToken })) {
        for (const ids of [a.ids, b.ids]) {
          const r = await t.api(route.method.toUpperCase(), fillPath(route.path, ids), { key, body: bodyFor(route, a) });
          if (r.status !== 403) failures.push(`${routeName(route)} with ${credentialName} on ${ids.accountId}: ${r.status} ${JSON.stringify(r.body)}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('answers 401 to every authenticated route with no key or a wrong one', async () => {
    const guarded = t.gateway.routes.filter((r) => r.handler && ['platform', 'account', 'accountOrAgent', 'agent'].includes(r.auth));
    const wrongKeys: Record<string, Record<string, string>> = {
      'no key': {},
      'unknown account key': { authorization: 'Bearer gwk_0123456789abcdefghijklmnopqrstuvwxyzABCD' },
      'unknown agent token': { authorization: 'Bearer gwa_0123456789abcdefghijklmnopqrstuvwxyzABCD' },
      'random bearer': { authorization: 'Bearer not-a-key-at-all' },
      'key without Bearer': { authorization: b.apiKey },
      'basic auth': { authorization: `Basic ${Buffer.from(`x:${a.apiKey}`).toString('base64')}` },
      'oversized bearer': { authorization: `Bearer gwk_${'x'.repeat(400)}` },
    };
    const failures: string[] = [];
    for (const route of guarded) {
      for (const [name, headers] of Object.entries(wrongKeys)) {
        const r = await t.api(route.method.toUpperCase(), fillPath(route.path, a.ids), { headers, body: bodyFor(route, a) });
        if (r.status !== 401) failures.push(`${routeName(route)} with ${name}: ${r.status} ${JSON.stringify(r.body)}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it("refuses the agent socket without an agent token (401), including with an account's API key", async () => {
    for (const headers of [{}, { authorization: `Bearer ${a.apiKey}` }, { authorization: 'Bearer gwa_forged' }]) {
      const status = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(wsUrl(t.url, '/api/v1/agent/ws'), { headers });
        ws.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
        ws.once('open', () => { ws.close(); reject(new Error('the agent socket opened without an agent token')); });
        ws.once('error', () => undefined);
      });
      expect(status).toBe(401);
    }
  });

  it('left Redis exactly as it was: no request above changed anything', async () => {
    // The pipeline is idle, so any queued work a request slipped in would show as a BullMQ key.
    await new Promise((r) => setTimeout(r, 300));
    const after = await snapshot(inspector, t.prefix, ignoredKey);
    expect(after.size).toBeGreaterThan(20);
    expect(differences(before, after)).toEqual([]);
    // A's records read back as they were made.
    const team = await t.api('GET', `/api/v1/accounts/${a.ids.accountId}/teams/${a.ids.teamId}`, { key: a.apiKey });
    expect(team.body).toMatchObject({ name: 'Support', agentIds: [a.ids.agentId] });
    const keys = await t.api('GET', `/api/v1/accounts/${a.ids.accountId}/keys`, { key: a.apiKey });
    expect(keys.body.items).toHaveLength(2);
  });

  it('notices a real change (the comparison is not blind)', async () => {
    const renamed = await t.api('PATCH', `/api/v1/accounts/${a.ids.accountId}/teams/${a.ids.teamId}`, { key: a.apiKey, body: { name: 'Renamed by A' } });
    expect(renamed.status).toBe(200);
    // A PATCH naming only the name keeps the members.
    expect(renamed.body).toMatchObject({ name: 'Renamed by A', agentIds: [a.ids.agentId] });
    const after = await snapshot(inspector, t.prefix, ignoredKey);
    expect(differences(before, after)).toEqual([expect.stringContaining(`changed ${t.prefix}:team:${a.ids.teamId}`)]);
  });

  it('keeps the fields a PATCH leaves out (zod 4 defaults inside .partial() used to reset them)', async () => {
    const agentPath = `/api/v1/accounts/${a.ids.accountId}/agents/${a.ids.agentId}`;
    expect((await t.api('PATCH', agentPath, { key: a.apiKey, body: { role: 'supervisor', capacity: 7 } })).status).toBe(200);
    const renamed = await t.api('PATCH', agentPath, { key: a.apiKey, body: { name: 'Ann B.' } });
    expect(renamed.body).toMatchObject({ name: 'Ann B.', role: 'supervisor', capacity: 7, state: { capacity: 7 } });
  });
});
