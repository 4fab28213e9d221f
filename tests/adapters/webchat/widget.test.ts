/**
 * Browser test of the embeddable web chat widget (adapters/webchat/widget/widget.js) against a tiny
 * fake gateway that implements only the visitor protocol (adapters/webchat/PROTOCOL.md).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { launchChromium } from '../../support/browser.ts';

const WIDGET_FILE = new URL('../../../adapters/webchat/widget/widget.js', import.meta.url);

interface Message {
  id: string;
  seq: number;
  direction: 'inbound' | 'outbound';
  externalId?: string | undefined;
  content: { type: 'text'; text: string };
  sentAt: string;
  status: string;
}
interface Visitor {
  inbox: string;
  id: string;
  token: string;
  messages: Message[];
  sockets: Set<WebSocket>;
}
type Frame = Record<string, unknown> & { type?: string };
/** Browser globals used inside page.evaluate (typed here so the test does not need the DOM lib). */
interface PageGlobals {
  localStorage: { getItem(k: string): string | null };
  GatewayChat: { onMessage(cb: (m: { content: { text: string } }) => void): () => void };
  got: string[];
  pwned?: number;
}
interface Received {
  inbox: string;
  conn: number;
  frame: Frame;
}

// ---------------------------------------------------------------- fake gateway
const visitors = new Map<string, Visitor>();
const received: Received[] = []; // every WS frame from any widget
const restCalls: Array<{ inbox: string; method: string; path: string; body: Frame | null }> = [];
const connects = new Map<string, number>(); // accepted WS connections per inbox
const refusedUpgrades = new Map<string, number>();
let refuseWs = false;
/** Texts the fake refuses once, with this error code, as the gateway does when rate limited or busy. */
const refuseOnce = new Map<string, string>();
/** Texts the fake's REST endpoint takes this long to accept (a slow request). */
const slowOverRest = new Map<string, number>();
let seqCounter = 0;
let idCounter = 0;
let connCounter = 0;

const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

function newVisitor(inbox: string): Visitor {
  const v: Visitor = { inbox, id: `vis_${++idCounter}`, token: `tok_${idCounter}_${Math.random().toString(36).slice(2)}`, messages: [], sockets: new Set() };
  visitors.set(v.id, v);
  return v;
}
function authVisitor(inbox: string, id: unknown, token: unknown): Visitor | 'bad' | null {
  if (typeof id !== 'string' || !id) return null;
  const v = visitors.get(id);
  return v && v.inbox === inbox && v.token === token ? v : 'bad';
}
function addMessage(v: Visitor, direction: Message['direction'], text: string, externalId?: string): Message {
  const m: Message = {
    id: `msg_${++idCounter}`, seq: ++seqCounter, direction, externalId,
    content: { type: 'text', text }, sentAt: new Date().toISOString(), status: 'sent',
  };
  v.messages.push(m);
  for (const s of v.sockets) s.send(JSON.stringify({ type: 'message', message: m }));
  return m;
}
/** Stores a visitor message once per clientMessageId (the gateway dedupes re-sends). */
function acceptVisitorMessage(v: Visitor, cid: string, text: string): string {
  const dup = v.messages.find((m) => m.externalId === cid);
  return dup ? dup.id : addMessage(v, 'inbound', text, cid).id;
}
function agentSay(v: Visitor, text: string): Message {
  return addMessage(v, 'outbound', text);
}
const welcomeBody = (v: Visitor, after: unknown) => ({
  visitorId: v.id, visitorToken: v.token, messages: v.messages.filter((m) => m.seq > (Number(after) || 0)),
});

function readBody(req: http.IncomingMessage): Promise<Frame | null> {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => { try { resolve(data ? (JSON.parse(data) as Frame) : null); } catch { resolve(null); } });
  });
}
function json(res: http.ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
const apiError = (res: http.ServerResponse, status: number, code: string) => json(res, status, { error: { code, message: code } });

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/page.html') {
    const inbox = url.searchParams.get('inbox') ?? 'inb_test';
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><html><head><title>shop</title></head><body><h1>Shop</h1>
<script src="http://127.0.0.1:${port}/webchat/${inbox}/widget.js" data-title="Support"></script></body></html>`);
    return;
  }
  const m = /^\/webchat\/([^/]+)\/(widget\.js|session|messages)$/.exec(url.pathname);
  if (!m) return apiError(res, 404, 'not_found');
  const [, inbox, what] = m as unknown as [string, string, string];
  if (what === 'widget.js') {
    res.writeHead(200, { 'content-type': 'application/javascript' });
    res.end(readFileSync(WIDGET_FILE));
    return;
  }
  const body = req.method === 'POST' ? await readBody(req) : null;
  restCalls.push({ inbox, method: req.method ?? '', path: url.pathname + url.search, body });
  if (inbox === 'inb_gone') return apiError(res, 404, 'unknown_inbox');
  if (what === 'session' && req.method === 'POST') {
    const found = authVisitor(inbox, body?.visitorId, body?.visitorToken);
    if (found === 'bad') return apiError(res, 401, 'bad_token');
    return json(res, 200, welcomeBody(found ?? newVisitor(inbox), body?.after));
  }
  const src = req.method === 'POST' ? body : Object.fromEntries(url.searchParams);
  const v = authVisitor(inbox, src?.visitorId, src?.visitorToken);
  if (!v || v === 'bad') return apiError(res, 401, 'bad_token');
  if (req.method === 'POST') {
    if (typeof body?.clientMessageId !== 'string' || typeof body.text !== 'string') return apiError(res, 400, 'bad_request');
    if (refuseOnce.get(body.text) === 'busy') {
      refuseOnce.delete(body.text);
      return apiError(res, 503, 'busy');
    }
    const delayMs = slowOverRest.get(body.text);
    if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
    return json(res, 202, { messageId: acceptVisitorMessage(v, body.clientMessageId, body.text) });
  }
  return json(res, 200, { messages: welcomeBody(v, url.searchParams.get('after')).messages });
});

const wss = new WebSocketServer({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  const m = /^\/webchat\/([^/]+)\/ws$/.exec(new URL(req.url ?? '/', 'http://x').pathname);
  const inbox = m?.[1];
  if (!inbox || refuseWs || inbox === 'inb_rest') {
    bump(refusedUpgrades, inbox ?? '?');
    socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, inbox));
});

function onConnection(ws: WebSocket, inbox: string) {
  const conn = ++connCounter;
  bump(connects, inbox);
  let visitor: Visitor | null = null;
  const send = (o: unknown) => ws.send(JSON.stringify(o));
  ws.on('close', () => visitor?.sockets.delete(ws));
  ws.on('message', (raw) => {
    let f: Frame;
    try { f = JSON.parse(raw.toString()) as Frame; } catch { return ws.close(4400); }
    received.push({ inbox, conn, frame: f });
    if (!visitor) {
      if (f.type !== 'hello') return ws.close(4400);
      if (inbox === 'inb_gone') { send({ type: 'error', code: 'unknown_inbox', message: 'no such inbox' }); return ws.close(4404); }
      const found = authVisitor(inbox, f.visitorId, f.visitorToken);
      if (found === 'bad') { send({ type: 'error', code: 'bad_token', message: 'bad token' }); return ws.close(4401); }
      visitor = found ?? newVisitor(inbox);
      send({ type: 'welcome', ...welcomeBody(visitor, f.after) });
      visitor.sockets.add(ws);
      return;
    }
    if (f.type === 'ping') return send({ type: 'pong' });
    if (f.type === 'message' && typeof f.clientMessageId === 'string' && typeof f.text === 'string') {
      const refusal = refuseOnce.get(f.text);
      if (refusal) {
        refuseOnce.delete(f.text);
        return send({ type: 'error', code: refusal, message: 'not now', clientMessageId: f.clientMessageId });
      }
      // a new message is echoed to the visitor's sockets by addMessage; a re-send is only re-accepted
      const messageId = acceptVisitorMessage(visitor, f.clientMessageId, f.text);
      send({ type: 'accepted', clientMessageId: f.clientMessageId, messageId });
    }
  });
}

let port = 0;
let browser: Browser;
const base = () => `http://127.0.0.1:${port}`;

// ---------------------------------------------------------------- helpers
const framesOf = (type: string, inbox = 'inb_test') => received.filter((r) => r.inbox === inbox && r.frame.type === type);
const sentTexts = (text: string) => framesOf('message').filter((r) => r.frame.text === text);
const visitorFor = (visitorId: string) => {
  const v = visitors.get(visitorId);
  if (!v) throw new Error(`no visitor ${visitorId}`);
  return v;
};

async function openPage(ctx: BrowserContext, inbox = 'inb_test'): Promise<{ page: Page; errors: string[] }> {
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('dialog', (d) => { errors.push(`dialog: ${d.message()}`); void d.dismiss(); });
  await page.goto(`${base()}/page.html?inbox=${inbox}`);
  await page.waitForSelector('[data-testid="gwc-launcher"]');
  return { page, errors };
}
async function typeAndSend(page: Page, text: string) {
  await page.fill('[data-testid="gwc-input"]', text);
  await page.press('[data-testid="gwc-input"]', 'Enter');
}
const bubbles = (page: Page) =>
  page.$$eval('[data-testid="gwc-message"]', (els) =>
    els.map((e) => `${e.getAttribute('data-direction')}/${e.getAttribute('data-status')}: ${e.textContent}`));
const stored = (page: Page) =>
  page.evaluate(() => JSON.parse((globalThis as unknown as PageGlobals).localStorage.getItem('gw-chat:inb_test') ?? 'null') as { visitorId: string; visitorToken: string; lastSeq: number } | null);

// ---------------------------------------------------------------- tests
describe('webchat widget (browser)', () => {
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    browser = await launchChromium();
  }, 20_000);

  afterAll(async () => {
    await browser?.close();
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('sends a message, replaces the pending bubble with the echo and shows the agent reply in order', async () => {
    const ctx = await browser.newContext();
    const { page, errors } = await openPage(ctx);
    await page.evaluate(() => {
      const w = globalThis as unknown as PageGlobals;
      w.got = [];
      w.GatewayChat.onMessage((m) => w.got.push(m.content.text));
    });
    expect(await page.isVisible('[data-testid="gwc-panel"]')).toBe(false);
    await page.click('[data-testid="gwc-launcher"]');
    await page.waitForSelector('[data-testid="gwc-panel"]', { state: 'visible' });
    await expect.poll(() => framesOf('hello').length).toBe(1);
    expect(framesOf('hello')[0]!.frame).toMatchObject({ type: 'hello', after: 0 });
    expect(framesOf('hello')[0]!.frame.visitorId).toBeUndefined();

    await typeAndSend(page, 'hello there');
    await expect.poll(() => sentTexts('hello there').length).toBe(1);
    const msg = sentTexts('hello there')[0]!;
    expect(msg.conn).toBe(framesOf('hello')[0]!.conn);
    expect(msg.frame.clientMessageId).toMatch(/^c-[0-9a-f-]{36}$/);
    expect(await page.inputValue('[data-testid="gwc-input"]')).toBe('');

    const { visitorId } = (await stored(page))!;
    const v = visitorFor(visitorId);
    // Waiting for an agent: the place in line, gone once an agent has the conversation.
    for (const s of v.sockets) s.send(JSON.stringify({ type: 'queue', position: 4, estimatedWaitSeconds: 150 }));
    await expect.poll(() => page.textContent('[data-testid="gwc-queue"]')).toBe('3 ahead of you (about 3 min): an agent will be with you soon.');
    for (const s of v.sockets) s.send(JSON.stringify({ type: 'queue', position: null, estimatedWaitSeconds: null }));
    await page.waitForSelector('[data-testid="gwc-queue"]', { state: 'hidden' });
    for (const s of v.sockets) s.send(JSON.stringify({ type: 'typing', on: true }));
    await page.waitForSelector('[data-testid="gwc-typing"]', { state: 'visible' });
    agentSay(v, 'Hi! How can I help?');
    await page.waitForSelector('[data-testid="gwc-message"][data-direction="outbound"]');
    await page.waitForSelector('[data-testid="gwc-typing"]', { state: 'hidden' });
    await expect.poll(() => bubbles(page)).toEqual([
      'inbound/sent: hello there',
      'outbound/sent: Hi! How can I help?',
    ]);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).got)).toEqual(['hello there', 'Hi! How can I help?']);
    expect(await stored(page)).toMatchObject({ visitorId, visitorToken: v.token, lastSeq: v.messages.at(-1)!.seq });
    expect(errors).toEqual([]);
    await ctx.close();
  }, 15_000);

  it('persists the visitor in localStorage and resumes after a reload with after = lastSeq', async () => {
    const ctx = await browser.newContext();
    const { page, errors } = await openPage(ctx);
    await page.click('[data-testid="gwc-launcher"]');
    await typeAndSend(page, 'before reload');
    await page.waitForSelector('[data-testid="gwc-message"][data-status="sent"]');
    const first = (await stored(page))!;
    const v = visitorFor(first.visitorId);
    agentSay(v, 'first reply');
    await expect.poll(async () => (await stored(page))!.lastSeq).toBe(v.messages.at(-1)!.seq);
    const lastSeq = (await stored(page))!.lastSeq;

    // leave the page, the agent answers meanwhile, come back
    await page.goto('about:blank');
    await expect.poll(() => v.sockets.size).toBe(0);
    agentSay(v, 'answered while you were away');
    const hellosBefore = framesOf('hello').length;
    await page.goto(`${base()}/page.html`);
    await expect.poll(() => framesOf('hello').length).toBe(hellosBefore + 1); // returning visitor connects at once
    expect(framesOf('hello').at(-1)!.frame).toMatchObject({ visitorId: v.id, visitorToken: v.token, after: lastSeq });
    await page.waitForSelector('.gwc-badge:not([hidden])'); // unread reply while the panel is closed
    await page.click('[data-testid="gwc-launcher"]');
    await page.waitForSelector('[data-testid="gwc-message"] >> text=answered while you were away');
    expect(await bubbles(page)).toEqual([
      'inbound/sent: before reload',
      'outbound/sent: first reply',
      'outbound/sent: answered while you were away',
    ]);
    expect(await stored(page)).toMatchObject({ visitorId: v.id, lastSeq: v.messages.at(-1)!.seq });
    expect(errors).toEqual([]);
    await ctx.close();
  }, 15_000);

  it('reconnects after the server drops the socket and sends a message typed while down exactly once', async () => {
    const ctx = await browser.newContext();
    const { page, errors } = await openPage(ctx);
    await page.click('[data-testid="gwc-launcher"]');
    await typeAndSend(page, 'first');
    await page.waitForSelector('[data-testid="gwc-message"][data-status="sent"]');
    const v = visitorFor((await stored(page))!.visitorId);
    const lastSeq = v.messages.at(-1)!.seq;

    refuseWs = true;
    const refusedBefore = refusedUpgrades.get('inb_test') ?? 0;
    for (const s of v.sockets) s.terminate();
    await expect.poll(() => refusedUpgrades.get('inb_test') ?? 0).toBeGreaterThan(refusedBefore); // widget noticed and retried
    await typeAndSend(page, 'typed while down');
    await page.waitForSelector('[data-testid="gwc-message"][data-status="pending"] >> text=typed while down');
    expect(sentTexts('typed while down')).toHaveLength(0);

    const hellosBefore = framesOf('hello').length;
    refuseWs = false;
    await expect.poll(() => sentTexts('typed while down').length, { timeout: 8000 }).toBe(1);
    expect(framesOf('hello').at(-1)!.frame).toMatchObject({ visitorId: v.id, after: lastSeq });
    expect(framesOf('hello').length).toBe(hellosBefore + 1);
    await expect.poll(() => bubbles(page)).toEqual(['inbound/sent: first', 'inbound/sent: typed while down']);
    await page.waitForTimeout(300);
    expect(sentTexts('typed while down')).toHaveLength(1);
    expect(v.messages.filter((m) => m.content.text === 'typed while down')).toHaveLength(1);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 15_000);

  it('waits out a busy refusal before sending the message again, with the ones typed after it behind it in order', async () => {
    const ctx = await browser.newContext();
    const { page, errors } = await openPage(ctx);
    await page.click('[data-testid="gwc-launcher"]');
    refuseOnce.set('refused at first', 'busy');
    await typeAndSend(page, 'refused at first');
    await expect.poll(() => sentTexts('refused at first').length).toBe(1);
    // Typed during the refused message's wait (3 s for busy): neither is sent until the wait is over.
    await typeAndSend(page, 'typed while it waits');
    await page.waitForTimeout(500);
    expect([sentTexts('refused at first').length, sentTexts('typed while it waits').length]).toEqual([1, 0]);
    await expect.poll(() => bubbles(page), { timeout: 8000 }).toEqual(['inbound/sent: refused at first', 'inbound/sent: typed while it waits']);
    const order = framesOf('message').map((r) => r.frame.text).filter((text) => text === 'refused at first' || text === 'typed while it waits');
    expect(order).toEqual(['refused at first', 'refused at first', 'typed while it waits']);
    const v = visitorFor((await stored(page))!.visitorId);
    expect(v.messages.map((m) => m.content.text)).toEqual(['refused at first', 'typed while it waits']);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 15_000);

  it('renders message text as text, never as HTML', async () => {
    const ctx = await browser.newContext();
    const { page, errors } = await openPage(ctx);
    const evil = '<img src=x onerror=alert(1)>';
    await page.click('[data-testid="gwc-launcher"]');
    await typeAndSend(page, evil);
    await expect.poll(() => sentTexts(evil).length).toBe(1);
    const v = visitorFor((await stored(page))!.visitorId);
    agentSay(v, '<b>bold</b><img src=y onerror="window.pwned=1">');
    await page.waitForSelector('[data-testid="gwc-message"][data-direction="outbound"]');
    await expect.poll(() => bubbles(page)).toEqual([
      `inbound/sent: ${evil}`,
      'outbound/sent: <b>bold</b><img src=y onerror="window.pwned=1">',
    ]);
    expect(await page.$$('.gwc-root img, .gwc-root b')).toHaveLength(0);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).pwned)).toBeUndefined();
    expect(errors).toEqual([]);
    await ctx.close();
  }, 15_000);

  it('falls back to the REST endpoints after 3 failed WebSocket connects', async () => {
    const ctx = await browser.newContext();
    const { page, errors } = await openPage(ctx, 'inb_rest');
    await page.click('[data-testid="gwc-launcher"]');
    await typeAndSend(page, 'over rest');
    const posted = () => restCalls.filter((c) => c.inbox === 'inb_rest' && c.method === 'POST' && c.path.endsWith('/messages'));
    await expect.poll(() => posted().length, { timeout: 8000 }).toBe(1);
    expect(refusedUpgrades.get('inb_rest')).toBe(3);
    const session = restCalls.find((c) => c.inbox === 'inb_rest' && c.path.endsWith('/session'))!;
    expect(session.body).toMatchObject({ after: 0 });
    const body = posted()[0]!.body!;
    expect(body.clientMessageId).toMatch(/^c-/);
    const v = visitorFor(String(body.visitorId));
    expect(body.visitorToken).toBe(v.token);
    agentSay(v, 'reply via polling');
    await page.waitForSelector('[data-testid="gwc-message"] >> text=reply via polling', { timeout: 8000 });
    await expect.poll(() => bubbles(page)).toEqual(['inbound/sent: over rest', 'outbound/sent: reply via polling']);
    const polls = restCalls.filter((c) => c.inbox === 'inb_rest' && c.method === 'GET');
    expect(polls.at(-1)!.path).toContain(`visitorId=${v.id}`);
    // One POST at a time: a message typed while a slow one is in flight is posted after it, not beside it.
    slowOverRest.set('slow to accept', 800);
    await typeAndSend(page, 'slow to accept');
    await typeAndSend(page, 'right behind it');
    await expect.poll(() => v.messages.filter((m) => m.direction === 'inbound').length, { timeout: 8000 }).toBe(3);
    expect(v.messages.filter((m) => m.direction === 'inbound').map((m) => m.content.text)).toEqual(['over rest', 'slow to accept', 'right behind it']);
    // A 503 busy is waited out (3 s) before the message is posted again, the next one behind it.
    refuseOnce.set('busy over rest', 'busy');
    await typeAndSend(page, 'busy over rest');
    await expect.poll(() => posted().filter((c) => c.body?.text === 'busy over rest').length).toBe(1);
    await typeAndSend(page, 'after busy');
    await page.waitForTimeout(500);
    expect(posted().map((c) => c.body?.text).slice(-1)).toEqual(['busy over rest']);
    await expect.poll(() => v.messages.filter((m) => m.direction === 'inbound').length, { timeout: 8000 }).toBe(5);
    expect(posted().map((c) => c.body?.text).slice(-3)).toEqual(['busy over rest', 'busy over rest', 'after busy']);
    expect(v.messages.filter((m) => m.direction === 'inbound').map((m) => m.content.text).slice(-2)).toEqual(['busy over rest', 'after busy']);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 25_000);

  it('does not reconnect after close code 4404 and shows an error line', async () => {
    const ctx = await browser.newContext();
    const { page, errors } = await openPage(ctx, 'inb_gone');
    await page.click('[data-testid="gwc-launcher"]');
    const err = await page.waitForSelector('[data-testid="gwc-error"]', { state: 'visible' });
    expect(await err.textContent()).toMatch(/not available/i);
    await page.waitForTimeout(800); // longer than the first backoff step (0.5 s + up to 30% jitter)
    expect(connects.get('inb_gone')).toBe(1);
    expect(refusedUpgrades.get('inb_gone')).toBeUndefined();
    expect(errors).toEqual([]);
    await ctx.close();
  }, 15_000);
});
