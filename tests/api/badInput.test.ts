// Bad input from every side (API clients, visitors, provider URLs): a clear 4xx or WebSocket close
// code, never a crash, never a stack trace, and nothing stored for a refused request.
import { request as httpRequest } from 'node:http';
import { createHmac } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, redisUrl, startTestGateway, TestSocket, wsUrl, type Tenant, type TestGateway } from '../support/testGateway.ts';

const bodyLimit = 2048;
const wsFrameLimit = 1024;
const identitySecret = 'identity-secret-0123456789';
const shopOrigin = 'https://shop.example';
const inboxIdPlaceholder = 'INBOX';

describe('bad input is refused cleanly', () => {
  let t: TestGateway;
  let tenant: Tenant;
  let inspector: Redis;
  let base: string;
  /** Every response body, frame and close reason the gateway sent, checked for stack traces at the end. */
  const seen: string[] = [];
  const inboxes: Record<string, string> = {};
  let victim: { visitorId: string; visitorToken: string };
  let storedBefore: Record<string, number>;

  const api = async (method: string, path: string, options: Parameters<TestGateway['api']>[2] = {}) => {
    const r = await t.api(method, path, options);
    seen.push(typeof r.body === 'string' ? r.body : JSON.stringify(r.body ?? ''));
    return r;
  };

  /** A request written by hand: chunked (no content-length) when `chunks` is given. */
  const rawRequest = (method: string, path: string, headers: Record<string, string>, chunks: Buffer[]) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(`${t.url}${path}`, { method, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { text += c; });
        res.on('end', () => { seen.push(text); resolve({ status: res.statusCode ?? 0, text }); });
      });
      req.on('error', reject);
      for (const chunk of chunks) req.write(chunk);
      req.end();
    });

  const openVisitor = async (inboxId: string, headers: Record<string, string> = {}) => {
    const socket = await TestSocket.open(wsUrl(t.url, `/webchat/${inboxId}/ws`), { headers });
    socket.ws.on('message', (data) => seen.push(data.toString()));
    socket.ws.on('close', (_code, reason) => seen.push(reason.toString()));
    return socket;
  };

  /** What a refused request must not have created or changed: stored records, and conversation sequence keys. */
  const storedState = async () => {
    const counts: Record<string, number> = {};
    for (const kind of ['msg', 'msgext', 'contact', 'contactid', 'conv', 'openconv', 'seq']) {
      let cursor = '0';
      let n = 0;
      do {
        const [next, batch] = await inspector.scan(cursor, 'MATCH', `${t.prefix}:${kind}:*`, 'COUNT', '1000');
        cursor = next;
        n += batch.length;
        if (kind === 'seq') for (const key of batch) counts.seqTotal = (counts.seqTotal ?? 0) + Number(await inspector.get(key)) % 1e9;
      } while (cursor !== '0');
      counts[kind] = n;
    }
    counts.inboundJobs = Object.values(await t.gateway.queues.inbound.getJobCounts()).reduce((a, b) => a + b, 0);
    return counts;
  };

  const createInbox = async (type: string, settings: Record<string, unknown>, credentials: Record<string, unknown>) => {
    const r = await api('POST', `${base}/inboxes`, { key: tenant.apiKey, body: { type, name: `${type} inbox`, settings, credentials } });
    if (r.status !== 201) throw new Error(`${type} inbox: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.id as string;
  };

  beforeAll(async () => {
    t = await startTestGateway({ GATEWAY_BODY_LIMIT: String(bodyLimit), GATEWAY_WS_MAX_FRAME: String(wsFrameLimit) });
    inspector = new Redis(redisUrl(), { maxRetriesPerRequest: 3 });
    tenant = await createTenant(t);
    base = `/api/v1/accounts/${tenant.accountId}`;
    inboxes.webchat = tenant.inboxId;
    inboxes.signed = await createInbox('webchat', { allowedOrigins: ['*'] }, { identitySecret });
    inboxes.shopOnly = await createInbox('webchat', { allowedOrigins: [shopOrigin] }, {});
    inboxes.wechat = await createInbox('wechat', {}, { appId: 'wx0123456789', appSecret: 'app-secret', token: 'server-token' });
    inboxes.wechatpay = await createInbox('wechatpay', {}, {
      mchId: '1900000109', apiV3Key: 'a'.repeat(32), serialNo: '5157F09EFDC096DE15EBE81A47057A72', privateKey: '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----',
    });
    inboxes.sms = await createInbox('sms', { provider: 'twilio' }, { accountSid: 'AC0123', authToken: 'auth-token', from: '+15550001111' });
    inboxes.email = await createInbox('email', { inboundWebhookProvider: 'postmark' }, { fromAddress: 'support@shop.example', webhookSigningKey: 'postmark-url-secret-0123456789' });
    // A visitor others will try to pose as (a session only: no message, so nothing is stored).
    const session = await api('POST', `/webchat/${inboxes.webchat}/session`, { body: { name: 'Victim' } });
    expect(session.status).toBe(200);
    victim = { visitorId: session.body.visitorId, visitorToken: session.body.visitorToken };
    storedBefore = await storedState();
  });

  afterAll(async () => {
    inspector?.disconnect();
    await t?.stop();
  });

  describe('HTTP bodies', () => {
    it('answers 400 invalid_json to a body that is not JSON', async () => {
      for (const [path, key] of [[`${base}/inboxes`, tenant.apiKey], ['/api/v1/accounts', t.adminKey], [`/webchat/${inboxes.webchat}/session`, undefined]] as const) {
        const r = await api('POST', path, { key, raw: '{"type": "webchat", "name": ', headers: { 'content-type': 'application/json' } });
        expect(r.status, path).toBe(400);
        expect(r.body.error.code).toBe('invalid_json');
      }
    });

    it('answers 400 naming the field to JSON of the wrong shape', async () => {
      const cases: [string, string, unknown, string][] = [
        ['POST', `${base}/inboxes`, { type: 'webchat', name: 42 }, 'name'],
        ['POST', `${base}/inboxes`, { type: 'fax', name: 'Fax' }, 'type'],
        ['POST', `${base}/inboxes`, { type: 'sms', name: 'Texts', settings: { provider: 'twilio' }, credentials: { accountSid: 'AC1' } }, 'authToken'],
        ['POST', `${base}/inboxes`, { type: 'webchat', name: 'Chat', credentials: { identitySecret: 'short' } }, 'identitySecret'],
        ['POST', `${base}/agents`, { name: 'Ann', capacity: -1 }, 'capacity'],
        ['POST', `${base}/webhooks`, { url: 'https://crm.example/hook', events: ['nope'] }, 'events'],
        ['PATCH', `${base}/agents/${tenant.agentId}`, { role: 'owner' }, 'role'],
        ['POST', `/webchat/${inboxes.webchat}/messages`, { visitorId: victim.visitorId, visitorToken: victim.visitorToken, clientMessageId: 'has spaces', text: 'hi' }, 'clientMessageId'],
      ];
      for (const [method, path, body, field] of cases) {
        const r = await api(method, path, { key: tenant.apiKey, body });
        expect(r.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400);
        expect(r.body.error.code).toBe('invalid_request');
        expect(r.body.error.message, JSON.stringify(body)).toContain(field);
      }
      // An array or a bare value where an object is expected.
      for (const raw of ['[1, 2]', '"text"', '7']) {
        const r = await api('POST', `${base}/agents`, { key: tenant.apiKey, raw, headers: { 'content-type': 'application/json' } });
        expect(r.status, raw).toBe(400);
      }
      const query = await api('GET', `${base}/conversations?limit=lots`, { key: tenant.apiKey });
      expect(query.status).toBe(400);
      expect(query.body.error.message).toContain('limit');
    });

    it('answers 413 to a body over the limit, declared or chunked', async () => {
      const big = { type: 'webchat', name: 'x'.repeat(bodyLimit + 500) };
      const declared = await api('POST', `${base}/inboxes`, { key: tenant.apiKey, body: big });
      expect(declared.status).toBe(413);
      expect(declared.body.error.code).toBe('payload_too_large');
      const chunk = Buffer.from(JSON.stringify(big));
      const chunked = await rawRequest('POST', `${base}/inboxes`, { authorization: `Bearer ${tenant.apiKey}`, 'content-type': 'application/json' },
        [chunk.subarray(0, 1000), chunk.subarray(1000)]);
      expect(chunked.status).toBe(413);
      expect(JSON.parse(chunked.text).error.code).toBe('payload_too_large');
      const visitorMessage = await api('POST', `/webchat/${inboxes.webchat}/messages`, {
        body: { ...victim, clientMessageId: 'big-1', text: 'y'.repeat(bodyLimit + 10) },
      });
      expect(visitorMessage.status).toBe(413);
      const provider = await rawRequest('POST', `/sms/${inboxes.sms}/inbound`, { 'content-type': 'application/x-www-form-urlencoded' },
        [Buffer.from(`Body=${'z'.repeat(bodyLimit + 10)}`)]);
      expect(provider.status).toBe(413);
    });

    it('answers 401 to a missing or wrong API key', async () => {
      for (const key of [undefined, 'gwk_not-a-real-key-0123456789', 'wrong']) {
        const r = await api('POST', `${base}/agents`, { key, body: { name: 'Nobody' } });
        expect(r.status, String(key)).toBe(401);
        expect(r.body.error.code).toBe('unauthorized');
      }
    });
  });

  describe('visitor socket frames', () => {
    it('closes with 1009 on a frame over the limit', async () => {
      const socket = await openVisitor(inboxes.webchat);
      socket.send({ type: 'hello', name: 'Big' });
      await socket.next((f) => f.type === 'welcome');
      socket.send({ type: 'message', clientMessageId: 'huge-1', text: 'h'.repeat(wsFrameLimit + 100) });
      expect(await socket.closed()).toBe(1009);
    });

    it('closes with 4400 on a frame that is not JSON', async () => {
      const socket = await openVisitor(inboxes.webchat);
      socket.send({ type: 'hello' });
      await socket.next((f) => f.type === 'welcome');
      socket.ws.send('this is {not json');
      expect(await socket.closed()).toBe(4400);
    });

    it('closes with 4400 on a message before hello', async () => {
      const socket = await openVisitor(inboxes.webchat);
      socket.send({ type: 'message', clientMessageId: 'early-1', text: 'am I in?' });
      const error = await socket.next((f) => f.type === 'error');
      expect(error.code).toBe('no_hello');
      expect(await socket.closed()).toBe(4400);
    });

    it('answers an error frame, and stays open, to JSON that is not a frame', async () => {
      const socket = await openVisitor(inboxes.webchat);
      socket.send({ type: 'hello' });
      await socket.next((f) => f.type === 'welcome');
      socket.send({ type: 'message', clientMessageId: 'bad id!', text: 'hi' });
      expect((await socket.next((f) => f.type === 'error')).code).toBe('invalid_frame');
      socket.ws.send(Buffer.from([1, 2, 3]), { binary: true });
      expect((await socket.next((f) => f.type === 'error')).code).toBe('invalid_frame');
      socket.send({ type: 'ping' });
      await socket.next((f) => f.type === 'pong');
      socket.close();
    });
  });

  describe('unknown inboxes and provider URLs', () => {
    it('closes a visitor socket for an unknown (or non-web-chat) inbox with 4404, and answers 404 over REST', async () => {
      for (const inboxId of ['inb_doesnotexist', inboxes.wechat!]) {
        const socket = await openVisitor(inboxId);
        expect(await socket.closed(), inboxId).toBe(4404);
        const session = await api('POST', `/webchat/${inboxId}/session`, { body: {} });
        expect(session.status).toBe(404);
        const poll = await api('GET', `/webchat/${inboxId}/messages?visitorId=${victim.visitorId}&visitorToken=${victim.visitorToken}`);
        expect(poll.status).toBe(404);
        expect((await api('GET', `/webchat/${inboxId}/widget.js`)).status).toBe(404);
      }
    });

    it('answers 404 on provider URLs for unknown inboxes; a real inbox of the type: 401 for a bad signature (built) or 501', async () => {
      // Channels built so far check the provider's signature first: the walk's fake one fails it.
      // (WeChat Pay is answered in its own failure shape, {"code":"FAIL"}.)
      const built: Record<string, [number, string]> = { wechat: [401, 'invalid_signature'], wechatpay: [401, 'FAIL'], email: [401, 'missing_credentials'] };
      const providerRoutes = t.gateway.routes.filter((r) => r.auth === 'provider');
      expect(providerRoutes.length).toBeGreaterThanOrEqual(6);
      for (const route of providerRoutes) {
        const type = route.path.split('/')[1]!;
        const realInbox = inboxes[type];
        if (!realInbox) throw new Error(`no ${type} inbox for ${route.path}: add one in beforeAll`);
        const path = route.path.replace(':inboxId', encodeURIComponent(inboxIdPlaceholder));
        const call = (inboxId: string) => route.method === 'get'
          ? api('GET', `${path.replace(inboxIdPlaceholder, inboxId)}?signature=0&timestamp=0&nonce=0&echostr=hello`)
          : api(route.method.toUpperCase(), path.replace(inboxIdPlaceholder, inboxId), {
            raw: '<xml><Content>hi</Content></xml>', headers: { 'content-type': 'text/xml' },
          });
        for (const unknown of ['inb_doesnotexist', 'x'.repeat(150), inboxes.webchat!]) {
          const r = await call(unknown);
          expect(r.status, `${route.method} ${route.path} with ${unknown.slice(0, 20)}`).toBe(404);
        }
        const real = await call(realInbox);
        const [status, code] = built[type] ?? [501, 'not_implemented'];
        expect(real.status, `${route.method} ${route.path}`).toBe(status);
        expect(real.body.error?.code ?? real.body.code).toBe(code);
      }
    });
  });

  describe('visitors posing as someone else', () => {
    it("refuses another visitor's id without its token (4401)", async () => {
      const claims = [
        { visitorId: victim.visitorId, visitorToken: 'forged-token' },
        { visitorId: victim.visitorId },
        { visitorId: victim.visitorId, visitorToken: victim.visitorToken.slice(0, -2) + 'AA' },
      ];
      for (const claim of claims) {
        const socket = await openVisitor(inboxes.webchat);
        socket.send({ type: 'hello', ...claim });
        expect((await socket.next((f) => f.type === 'error')).code).toBe('bad_identity');
        expect(await socket.closed()).toBe(4401);
      }
      // A token is bound to its inbox: the right pair is refused on another inbox.
      const elsewhere = await openVisitor(inboxes.signed);
      elsewhere.send({ type: 'hello', ...victim });
      expect(await elsewhere.closed()).toBe(4401);
    });

    it('refuses a signed identity with a wrong hash (4401) and accepts the right one as the same visitor', async () => {
      const rightHash = createHmac('sha256', identitySecret).update('user-42').digest('hex');
      for (const hello of [
        { userId: 'user-42', userHash: 'f'.repeat(64) },
        { userId: 'user-42' },
        { userId: 'user-43', userHash: rightHash },
      ]) {
        const socket = await openVisitor(inboxes.signed);
        socket.send({ type: 'hello', ...hello });
        expect(await socket.closed(), JSON.stringify(hello)).toBe(4401);
      }
      // An inbox without an identity secret does not take signed identities at all.
      const unsigned = await openVisitor(inboxes.webchat);
      unsigned.send({ type: 'hello', userId: 'user-42', userHash: rightHash });
      expect(await unsigned.closed()).toBe(4401);

      const visitorIds: string[] = [];
      for (let i = 0; i < 2; i++) {
        const socket = await openVisitor(inboxes.signed);
        socket.send({ type: 'hello', userId: 'user-42', userHash: i === 0 ? rightHash : rightHash.toUpperCase() });
        visitorIds.push((await socket.next((f) => f.type === 'welcome')).visitorId);
        socket.close();
      }
      expect(visitorIds[0]).toMatch(/^u_/);
      expect(visitorIds[1]).toBe(visitorIds[0]);
    });

    it('answers 401 over the REST fallback to a bad token or signature', async () => {
      const forged = { visitorId: victim.visitorId, visitorToken: 'forged-token' };
      const send = await api('POST', `/webchat/${inboxes.webchat}/messages`, { body: { ...forged, clientMessageId: 'pose-1', text: 'it is me' } });
      expect(send.status).toBe(401);
      expect(send.body.error.code).toBe('bad_identity');
      const poll = await api('GET', `/webchat/${inboxes.webchat}/messages?visitorId=${forged.visitorId}&visitorToken=${forged.visitorToken}`);
      expect(poll.status).toBe(401);
      const session = await api('POST', `/webchat/${inboxes.webchat}/session`, { body: forged });
      expect(session.status).toBe(401);
      const signed = await api('POST', `/webchat/${inboxes.signed}/session`, { body: { userId: 'user-42', userHash: '0'.repeat(64) } });
      expect(signed.status).toBe(401);
    });
  });

  describe('page origins', () => {
    it('refuses a socket from a page origin the inbox does not allow (4403) and accepts the allowed one', async () => {
      for (const headers of [{ origin: 'https://evil.example' }, { origin: 'https://shop.example.evil.example' }, {}] as Record<string, string>[]) {
        const socket = await openVisitor(inboxes.shopOnly, headers);
        expect(await socket.closed(), JSON.stringify(headers)).toBe(4403);
      }
      const allowed = await openVisitor(inboxes.shopOnly, { origin: shopOrigin });
      allowed.send({ type: 'hello' });
      expect((await allowed.next((f) => f.type === 'welcome')).visitorId).toMatch(/^v_/);
      allowed.close();
    });

    it('applies the same origin rule to the REST fallback (403, CORS only for the allowed origin)', async () => {
      const refused = await api('POST', `/webchat/${inboxes.shopOnly}/session`, { body: {}, headers: { origin: 'https://evil.example' } });
      expect(refused.status).toBe(403);
      expect(refused.body.error.code).toBe('origin_not_allowed');
      expect(refused.headers.get('access-control-allow-origin')).toBeNull();
      const preflight = await api('OPTIONS', `/webchat/${inboxes.shopOnly}/messages`, { headers: { origin: 'https://evil.example' } });
      expect(preflight.status).toBe(403);
      const accepted = await api('POST', `/webchat/${inboxes.shopOnly}/session`, { body: {}, headers: { origin: shopOrigin } });
      expect(accepted.status).toBe(200);
      expect(accepted.headers.get('access-control-allow-origin')).toBe(shopOrigin);
    });
  });

  describe('afterwards', () => {
    it('still answers /healthz, stored nothing for refused requests, and never showed a stack trace', async () => {
      expect((await api('GET', '/healthz')).status).toBe(200);
      // Anything wrongly accepted would be queued or ingested by now; wait for the queue to be idle.
      for (let i = 0; i < 50; i++) {
        const counts = await t.gateway.queues.inbound.getJobCounts('waiting', 'active', 'delayed');
        if (Object.values(counts).every((n) => n === 0)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, 300));
      const storedAfter = await storedState();
      expect(storedAfter).toEqual(storedBefore);
      expect(seen.length).toBeGreaterThan(50);
      for (const text of seen) {
        expect(text).not.toMatch(/\n\s+at\s/);
        expect(text).not.toMatch(/\.ts:\d|\.js:\d/);
        expect(text).not.toMatch(/node_modules|\/work\//);
      }

      // The comparison is not blind: one accepted visitor message shows in it.
      const sent = await api('POST', `/webchat/${inboxes.webchat}/messages`, { body: { ...victim, clientMessageId: 'real-1', text: 'a real message' } });
      expect(sent.status).toBe(202);
      let stored = storedAfter;
      for (let i = 0; i < 100 && stored.msg === storedAfter.msg; i++) {
        await new Promise((r) => setTimeout(r, 100));
        stored = await storedState();
      }
      expect(stored).toMatchObject({ msg: storedAfter.msg! + 1, conv: storedAfter.conv! + 2 });
      expect(stored.seqTotal).not.toBe(storedAfter.seqTotal);
    });
  });
});
