/**
 * Foundation acceptance test: headless Chromium opens the gateway's demo page (created the way
 * `npm start` does), sends a message through the real widget, a test agent receives it on its
 * WebSocket and replies, and the reply shows in the page; then the visitor reloads and comes back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { launchChromium } from '../support/browser.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDemo, type DemoInfo } from '../../src/demo.ts';
import { startTestGateway, TestSocket, wsUrl, type TestGateway } from '../support/testGateway.ts';

const SCREENSHOT_FILE = '/tmp/demo-chat.png';
const UI_TIMEOUT_MS = 20_000; // a loaded 2-core machine runs other suites at the same time

/** Browser globals used inside page.evaluate (typed here: the test does not load the DOM lib). */
interface PageGlobals { localStorage: { getItem(key: string): string | null } }
interface StoredVisitor { visitorId: string; visitorToken: string; lastSeq: number }

const bubble = (direction: 'inbound' | 'outbound', text: string) =>
  `[data-testid="gwc-message"][data-direction="${direction}"]:text-is("${text}")`;

/** Every bubble in the page as "direction: text", in display order. */
const bubbles = (page: Page) =>
  page.$$eval('[data-testid="gwc-message"]', (els) => els.map((e) => `${e.getAttribute('data-direction')}: ${e.textContent}`));

describe('the demo page in a real browser', () => {
  let t: TestGateway;
  let dataDir: string;
  let demo: DemoInfo;
  let agent: TestSocket;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let conversationId: string;
  const pageProblems: string[] = []; // console errors and uncaught exceptions of every page opened

  async function openDemoPage(): Promise<Page> {
    const opened = await context.newPage();
    opened.setDefaultTimeout(UI_TIMEOUT_MS);
    opened.on('console', (m) => { if (m.type() === 'error') pageProblems.push(`console: ${m.text()}`); });
    opened.on('pageerror', (e) => pageProblems.push(`pageerror: ${String(e)}`));
    await opened.goto(`${t.url}/demo/${demo.inboxId}`);
    await opened.waitForSelector('[data-testid="gwc-launcher"]');
    return opened;
  }

  const storedVisitor = (p: Page) => p.evaluate((key) =>
    JSON.parse((globalThis as unknown as PageGlobals).localStorage.getItem(key) ?? 'null') as StoredVisitor | null, `gw-chat:${demo.inboxId}`);

  beforeAll(async () => {
    t = await startTestGateway();
    dataDir = mkdtempSync(join(tmpdir(), 'gw-demo-'));
    const created = await ensureDemo(t.gateway.services, dataDir);
    if (!created) throw new Error('the demo was not created on a fresh gateway');
    demo = created;
    agent = await TestSocket.open(wsUrl(t.url, '/api/v1/agent/ws'), { headers: { authorization: `Bearer ${demo.agentToken}` } });
    await agent.next((f) => f.type === 'hello');
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  });

  afterAll(async () => {
    await browser?.close();
    agent?.close();
    await t?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves the demo page embedding the widget of the demo inbox', async () => {
    const response = await t.api('GET', `/demo/${demo.inboxId}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(response.body).toContain(`/webchat/${demo.inboxId}/widget.js`);
  });

  it('delivers a message typed in the page to the agent and shows the agent typing and reply', async () => {
    page = await openDemoPage();
    expect(await page.isVisible('[data-testid="gwc-panel"]')).toBe(false);
    await page.click('[data-testid="gwc-launcher"]');
    await page.waitForSelector('[data-testid="gwc-panel"]', { state: 'visible' });
    await page.fill('[data-testid="gwc-input"]', 'Hello, is my order shipped?');
    await page.click('[data-testid="gwc-send"]');

    const assigned = await agent.next((f) => f.type === 'event' && f.event.type === 'conversation.assigned', UI_TIMEOUT_MS);
    conversationId = assigned.event.subject;
    const received = (assigned.messages ?? []).some((m: any) => m.content?.text === 'Hello, is my order shipped?') ||
      (await agent.next((f) => f.type === 'event' && f.event.type === 'message.received' && f.event.subject === conversationId, UI_TIMEOUT_MS))
        .event.data.content.text === 'Hello, is my order shipped?';
    expect(received).toBe(true);

    agent.send({ type: 'typing', conversationId, on: true });
    await page.waitForSelector('[data-testid="gwc-typing"]', { state: 'visible' });

    agent.send({ type: 'reply', conversationId, text: 'Yes, it left the warehouse today.', clientMessageId: 'r1' });
    expect((await agent.next((f) => f.type === 'ack', UI_TIMEOUT_MS)).message.status).toBe('queued');
    await page.waitForSelector(bubble('outbound', 'Yes, it left the warehouse today.'));
    // The echo of the visitor's own message replaced its pending bubble (it carries a seq now).
    await page.waitForSelector(`${bubble('inbound', 'Hello, is my order shipped?')}[data-seq]`);
    await page.waitForSelector('[data-testid="gwc-typing"]', { state: 'hidden' }); // a reply ends "typing"
    expect(await bubbles(page)).toEqual([
      'inbound: Hello, is my order shipped?',
      'outbound: Yes, it left the warehouse today.',
    ]);
    await page.screenshot({ path: SCREENSHOT_FILE });
  });

  it('still shows the history after a reload, as the same visitor in the same conversation', async () => {
    const before = await storedVisitor(page);
    expect(before?.visitorId).toMatch(/^v_/);
    await page.reload();
    await page.waitForSelector('[data-testid="gwc-launcher"]');
    await page.click('[data-testid="gwc-launcher"]');
    await page.waitForSelector(bubble('outbound', 'Yes, it left the warehouse today.'));
    expect(await bubbles(page)).toEqual([
      'inbound: Hello, is my order shipped?',
      'outbound: Yes, it left the warehouse today.',
    ]);
    expect((await storedVisitor(page))?.visitorId).toBe(before!.visitorId);

    // The resumed visitor writes into the same conversation.
    await page.fill('[data-testid="gwc-input"]', 'Thanks! When will it arrive?');
    await page.click('[data-testid="gwc-send"]');
    const received = await agent.next((f) => f.type === 'event' && f.event.type === 'message.received' &&
      f.event.data.content?.text === 'Thanks! When will it arrive?', UI_TIMEOUT_MS);
    expect(received.event.subject).toBe(conversationId);
    await page.waitForSelector(`${bubble('inbound', 'Thanks! When will it arrive?')}[data-seq]`);
  });

  it('shows a reply sent while the page was closed when the visitor comes back', async () => {
    await page.close();
    agent.send({ type: 'reply', conversationId, text: 'Tomorrow before noon.', clientMessageId: 'r2' });
    expect((await agent.next((f) => f.type === 'ack', UI_TIMEOUT_MS)).message.status).toBe('queued');

    page = await openDemoPage(); // a new tab: same localStorage, fresh sessionStorage
    // The returning visitor connects at once; only the reply it has not seen yet counts as unread.
    await page.waitForSelector('.gwc-badge:not([hidden])');
    expect(await page.textContent('.gwc-badge')).toBe('1');
    await page.click('[data-testid="gwc-launcher"]');
    await page.waitForSelector(bubble('outbound', 'Tomorrow before noon.'));
    expect(await bubbles(page)).toEqual([
      'inbound: Hello, is my order shipped?',
      'outbound: Yes, it left the warehouse today.',
      'inbound: Thanks! When will it arrive?',
      'outbound: Tomorrow before noon.',
    ]);
  });

  it('logged no console errors and threw no page errors', () => {
    expect(pageProblems).toEqual([]);
  });
});
