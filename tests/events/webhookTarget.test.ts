import { createServer, type Server } from 'node:http';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../../config/settings.ts';
import { checkProviderHost, checkWebhookTarget, GatewayAddress, isPrivateAddress, WebhookTargetError } from '../../src/events/webhookTarget.ts';
import { createTenant, startTestGateway, TestSocket, wsUrl, type Tenant, type TestGateway } from '../support/testGateway.ts';

describe('webhook targets', () => {
  it('knows private, loopback, link-local and mapped addresses', () => {
    for (const address of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1']) {
      expect(isPrivateAddress(address), address).toBe(true);
    }
    for (const address of ['93.184.216.34', '1.1.1.1', '2606:4700:4700::1111']) expect(isPrivateAddress(address), address).toBe(false);
  });

  it('refuses literal private hosts without resolving, and resolved ones at delivery', async () => {
    await expect(checkWebhookTarget('http://127.0.0.1:6379/', false, false)).rejects.toThrow(WebhookTargetError);
    await expect(checkWebhookTarget('http://[::1]/hook', false, false)).rejects.toThrow(WebhookTargetError);
    await expect(checkWebhookTarget('http://localhost/hook', false, false)).rejects.toThrow(WebhookTargetError);
    await expect(checkWebhookTarget('https://crm.example/hook', false, false)).resolves.toBeUndefined();
    await expect(checkWebhookTarget('http://127.0.0.1/hook', true)).resolves.toBeUndefined();
  });

  it('checks a bare server host (IMAP, SMTP) the same way, and refuses one a URL would read as another host', async () => {
    for (const host of ['127.0.0.1', '::1', '0:0:0:0:0:0:0:1', 'localhost', 'MAIL.localhost', '169.254.169.254', '10.0.0.5']) {
      await expect(checkProviderHost(host, false), host).rejects.toThrow(/private address/);
    }
    for (const host of ['mail.example.com/@127.0.0.1', 'user@mail.example.com', 'mail.example.com:25', '0x7f.1', '']) {
      await expect(checkProviderHost(host, true), host).rejects.toThrow(/not a plain host name/);
    }
    await expect(checkProviderHost('93.184.216.34', false)).resolves.toBeUndefined();
    await expect(checkProviderHost('127.0.0.1', true)).resolves.toBeUndefined();
    await expect(checkProviderHost('Mail.Example.COM', true)).resolves.toBeUndefined();
  });

  it("refuses the gateway's own address whether private targets are allowed or not", async () => {
    const self = new GatewayAddress('https://gateway.example.com', () => 3000);
    for (const allow of [true, false]) {
      for (const url of ['https://gateway.example.com/api/v1/accounts', 'https://GATEWAY.example.com.:443/x', 'http://localhost.:3000/', 'http://127.0.0.1:3000/x', 'http://localhost:3000/', 'http://[::1]:3000/', 'http://0.0.0.0:3000/']) {
        await expect(checkWebhookTarget(url, allow, false, self), url).rejects.toThrow(/gateway's own address/);
      }
    }
    // IPv4-mapped IPv6, dotted or as the URL parser rewrites it (::ffff:7f00:1), is the same address.
    const ownIpv4 = Object.values(networkInterfaces()).flatMap((l) => l ?? []).find((a) => a.family === 'IPv4' && !a.internal)?.address;
    for (const mapped of ['::ffff:127.0.0.1', '::ffff:7f00:1', ...(ownIpv4 ? [`::ffff:${ownIpv4}`] : [])]) {
      await expect(checkWebhookTarget(`http://[${mapped}]:3000/`, true, false, self), mapped).rejects.toThrow(/gateway's own address/);
    }
    await expect(checkWebhookTarget('http://[::ffff:7f00:1]:8080/', false, false)).rejects.toThrow(/private address/);
    // Another port on this machine (an on-premise CRM beside the gateway) is not the gateway.
    await expect(checkWebhookTarget('http://127.0.0.1:8080/crm', true, false, self)).resolves.toBeUndefined();
    await expect(checkWebhookTarget('http://gateway.example.com/other-port', true, false, self)).resolves.toBeUndefined();
  });

  it('allows private targets by default (on-premise CRMs); refusing them is a setting', () => {
    expect(loadSettings({}, []).webhookPrivateTargets).toBe('allow');
    expect(loadSettings({ GATEWAY_WEBHOOK_PRIVATE_TARGETS: 'deny' }, []).webhookPrivateTargets).toBe('deny');
  });
});

describe('a gateway that denies private webhook targets (GATEWAY_WEBHOOK_PRIVATE_TARGETS=deny)', () => {
  let t: TestGateway;
  let tenant: Tenant;
  let receiver: Server;
  let hits = 0;
  beforeAll(async () => {
    // crm.internal.test is a CRM name that DNS puts on a private address; every other name goes to the system's resolver.
    const webhookLookup = async (name: string) => name === 'crm.internal.test' ? ['10.20.30.40'] : (await lookup(name, { all: true })).map((a) => a.address);
    t = await startTestGateway({ GATEWAY_WEBHOOK_PRIVATE_TARGETS: 'deny' }, 'all', { webhookLookup });
    tenant = await createTenant(t);
    receiver = createServer((_req, res) => { hits++; res.end('ok'); });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    await t.stop();
    receiver.close();
  });

  /** A visitor's message, accepted (an event for every subscription). */
  async function visitorSays(clientMessageId: string, text: string): Promise<TestSocket> {
    const visitor = await TestSocket.open(wsUrl(t.url, `/webchat/${tenant.inboxId}/ws`));
    visitor.send({ type: 'hello' });
    await visitor.next((f) => f.type === 'welcome');
    visitor.send({ type: 'message', clientMessageId, text });
    await visitor.next((f) => f.type === 'accepted');
    return visitor;
  }
  const deliveriesOf = async (webhookId: string) =>
    (await t.api('GET', `/api/v1/accounts/${tenant.accountId}/webhooks/${webhookId}/deliveries`, { key: tenant.apiKey })).body.items;

  it('refuses a loopback URL with 400 and never calls a name that resolves to one', async () => {
    const port = (receiver.address() as AddressInfo).port;
    const refused = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks`, {
      key: tenant.apiKey, body: { url: `http://127.0.0.1:${port}/hook`, events: ['*'] },
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain('private');

    // A name is accepted at subscription time, then checked against what it resolves to at delivery.
    const created = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks`, {
      key: tenant.apiKey, body: { url: `http://localtest.invalid.localhost:${port}/hook`, events: ['message.received'] },
    });
    expect(created.status).toBe(400);
    const byName = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks`, {
      key: tenant.apiKey, body: { url: `http://gateway-test.invalid:${port}/hook`, events: ['message.received'] },
    });
    expect(byName.status).toBe(201);
    const visitor = await visitorSays('c1', 'hi');
    // A name that does not resolve may be a passing DNS fault: the delivery waits for its retry.
    const deliveries = () => deliveriesOf(byName.body.id);
    await expect.poll(async () => (await deliveries())[0]?.attempts ?? 0, { timeout: 20_000 }).toBeGreaterThanOrEqual(1);
    const [retrying] = await deliveries();
    expect(retrying).toMatchObject({ status: 'pending', lastError: expect.stringContaining('does not resolve') });
    expect(retrying.nextAttemptAt).toEqual(expect.any(String));
    expect(hits).toBe(0);
    visitor.close();
  });

  it('fails for good a delivery to a name that resolves to a private address, refused as its connection opens', async () => {
    const created = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/webhooks`, {
      key: tenant.apiKey, body: { url: 'http://crm.internal.test:8080/by-name', events: ['message.received'] },
    });
    expect(created.status).toBe(201);
    const visitor = await visitorSays('c3', 'by name');
    const deliveries = () => deliveriesOf(created.body.id);
    await expect.poll(async () => (await deliveries())[0]?.status, { timeout: 20_000 }).toBe('failed');
    expect((await deliveries())[0]).toMatchObject({ attempts: 1, failedReason: expect.stringContaining('private address') });
    expect(hits).toBe(0);
    visitor.close();
  });

  it('fails a delivery to a private address for good (no retries), even for a subscription stored before', async () => {
    const port = (receiver.address() as AddressInfo).port;
    const { record } = await t.gateway.services.webhooks.create(tenant.accountId, {
      url: `http://127.0.0.1:${port}/old`, events: ['message.received'], description: '', format: 'structured', inboxIds: null,
      pii: { maskPhoneNumbers: false, maskEmailAddresses: false },
    });
    const visitor = await visitorSays('c2', 'hi again');
    const deliveries = () => deliveriesOf(record.id);
    await expect.poll(async () => (await deliveries())[0]?.status, { timeout: 20_000 }).toBe('failed');
    const [failed] = await deliveries();
    expect(failed).toMatchObject({ attempts: 1, failedReason: expect.stringContaining('private address') });
    expect(hits).toBe(0);
    visitor.close();
  });
});
