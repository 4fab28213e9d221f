// The agent console page in a real browser: a visitor writes, the chat shows up, the agent answers
// from the page and the visitor receives it; typing, status, reload and resolve work the same way.
import { type Browser, type Page } from 'playwright-core';
import { launchChromium } from '../support/browser.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, startTestGateway, TestSocket, wsUrl, type Tenant, type TestGateway } from '../support/testGateway.ts';

const uiTimeout = 20_000;

describe('agent console page', () => {
  let t: TestGateway;
  let tenant: Tenant;
  let browser: Browser;
  let page: Page;
  const pageProblems: string[] = [];

  beforeAll(async () => {
    t = await startTestGateway();
    tenant = await createTenant(t);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1100, height: 680 } });
    page.setDefaultTimeout(uiTimeout);
    page.on('pageerror', (error) => pageProblems.push(`pageerror: ${error.message}`));
    page.on('console', (message) => { if (message.type() === 'error') pageProblems.push(`console: ${message.text()}`); });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('serves a self-contained page with a strict content security policy', async () => {
    const response = await fetch(`${t.url}/agent`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = response.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[^']+'/);
    const html = await response.text();
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href="(?!data:)|https?:\/\/(?!www\.w3)/);
    expect(html.length).toBeLessThan(28_000);
  });

  it('shows a visitor chat, sends the reply from the page, and resolves it', async () => {
    await page.goto(`${t.url}/agent?token=${tenant.agentToken}`);
    await page.locator('[data-testid=connection][data-state=open]').waitFor();
    expect(new URL(page.url()).search).toBe(''); // the token leaves the address bar
    await expect.poll(() => page.locator('[data-testid=agent-name]').textContent(), { timeout: uiTimeout }).toBe('Ann');

    const visitor = await TestSocket.open(wsUrl(t.url, `/webchat/${tenant.inboxId}/ws`));
    visitor.send({ type: 'hello', name: 'Vic' });
    await visitor.next((f) => f.type === 'welcome');
    visitor.send({ type: 'message', clientMessageId: 'c1', text: 'Hello, is my order shipped?' });
    await visitor.next((f) => f.type === 'accepted' && f.clientMessageId === 'c1');

    const item = page.locator('[data-testid=conversation-item]');
    await item.first().waitFor();
    const conversationId = await item.first().getAttribute('data-conversation-id');
    expect(conversationId).toMatch(/\S/);
    await expect.poll(() => item.first().textContent(), { timeout: uiTimeout }).toContain('Vic');
    const messages = page.locator('[data-testid=message-list] [data-testid=message]');
    await messages.filter({ hasText: 'Hello, is my order shipped?' }).waitFor();

    // Visitor text is shown as text, never parsed as HTML.
    const hostile = '<img src=x onerror="document.body.dataset.owned=1"><b>bold?</b>';
    visitor.send({ type: 'message', clientMessageId: 'c2', text: hostile });
    await messages.filter({ hasText: 'bold?' }).waitFor();
    expect(await messages.filter({ hasText: 'bold?' }).locator('.text').textContent()).toBe(hostile);
    expect(await page.locator('[data-testid=message-list] img, [data-testid=message-list] b').count()).toBe(0);
    expect(await page.evaluate('document.body.dataset.owned')).toBeUndefined();

    visitor.send({ type: 'typing', on: true });
    await page.locator('[data-testid=visitor-typing]').waitFor({ state: 'visible' });

    await page.locator('[data-testid=reply-input]').fill('Yes, it left today.');
    expect((await visitor.next((f) => f.type === 'typing')).on).toBe(true);
    await page.locator('[data-testid=send-button]').click();
    const echo = await visitor.next((f) => f.type === 'message' && f.message.direction === 'outbound', 20_000);
    expect(echo.message.content.text).toBe('Yes, it left today.');
    await messages.filter({ hasText: 'Yes, it left today.' }).filter({ hasText: 'sent' }).waitFor();
    visitor.send({ type: 'typing', on: false });
    await page.locator('[data-testid=visitor-typing]').waitFor({ state: 'hidden' });
    await page.screenshot({ path: '/tmp/agent-console.png' });

    // The status selector moves the agent's presence.
    await page.locator('[data-testid=status-select]').selectOption('away');
    await expect.poll(async () => (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/agents/${tenant.agentId}`, { key: tenant.apiKey })).body.state.status,
      { timeout: uiTimeout }).toBe('away');
    await page.locator('[data-testid=status-select]').selectOption('online');
    await expect.poll(async () => (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/agents/${tenant.agentId}`, { key: tenant.apiKey })).body.state.status,
      { timeout: uiTimeout }).toBe('online');

    // After a reload the token comes from storage and the open chat with its history from the API.
    await page.reload();
    await page.locator('[data-testid=connection][data-state=open]').waitFor();
    await page.locator(`[data-testid=conversation-item][data-conversation-id="${conversationId}"]`).waitFor();
    await messages.filter({ hasText: 'Hello, is my order shipped?' }).waitFor();
    await messages.filter({ hasText: 'Yes, it left today.' }).waitFor();
    expect(await messages.count()).toBe(3);

    await page.locator('[data-testid=resolve-button]').click();
    await page.locator('[data-testid=conversation-item]', { hasText: 'resolved' }).waitFor();
    const conversation = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}`, { key: tenant.apiKey });
    expect(conversation.body.status).toBe('resolved');
    expect(await page.locator('[data-testid=reply-input]').isDisabled()).toBe(true);

    expect(pageProblems).toEqual([]);
    visitor.close();
  });

  it('lists an offer with Accept and Decline when the queue asks agents to accept', async () => {
    const put = await t.api('PUT', `/api/v1/accounts/${tenant.accountId}/routing`, { key: tenant.apiKey, body: { offerTimeoutSeconds: 60 } });
    expect(put.status).toBe(200);
    try {
      await page.goto(`${t.url}/agent?token=${tenant.agentToken}`);
      await page.locator('[data-testid=connection][data-state=open]').waitFor();
      const visitor = await TestSocket.open(wsUrl(t.url, `/webchat/${tenant.inboxId}/ws`));
      visitor.send({ type: 'hello', name: 'Olga' });
      await visitor.next((f) => f.type === 'welcome');
      visitor.send({ type: 'message', clientMessageId: 'o1', text: 'Do you ship to Lyon?' });
      const offer = page.locator('[data-testid=offer-item]', { hasText: 'Do you ship to Lyon?' });
      await offer.waitFor();
      const conversationId = (await offer.getAttribute('data-conversation-id'))!;
      await offer.locator('[data-testid=accept-button]').click();
      await page.locator(`[data-testid=conversation-item][data-conversation-id="${conversationId}"]`).waitFor();
      await offer.waitFor({ state: 'detached' });
      const conversation = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${conversationId}`, { key: tenant.apiKey });
      expect(conversation.body.assigneeId).toBe(tenant.agentId);
      expect(pageProblems).toEqual([]);
      visitor.close();
    } finally {
      await t.api('PUT', `/api/v1/accounts/${tenant.accountId}/routing`, { key: tenant.apiKey, body: {} });
    }
  });

  it('keeps retrying with a wrong token and says it cannot connect', async () => {
    const other = await browser.newPage();
    try {
      other.setDefaultTimeout(uiTimeout);
      await other.goto(`${t.url}/agent?token=gwa_not-a-real-token`);
      await other.locator('[data-testid=connection][data-state=retrying]').waitFor();
      expect(await other.locator('[data-testid=connection]').textContent()).toMatch(/Cannot connect, retrying in \d+ s/);
      expect(await other.locator('[data-testid=reply-input]').isDisabled()).toBe(true);
    } finally {
      await other.close();
    }
  });
});
