// POST /email/{inboxId}/inbound end to end on the real gateway and Redis: each provider's post reaches
// a conversation, a retry is stored once, and bad posts (signature, replayed token, malformed, oversized,
// unknown inbox) are refused and change nothing.
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emailWebhookMaxBodyBytes } from '../../src/emailWebhooks/emailWebhookChannel.ts';
import { listAllConversations, waitFor } from '../support/coreFixtures.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/email/${name}`, import.meta.url));
const signingKey = 'key-mailgun-signing-0123456789abcdef';
const sharedSecret = 'sendgrid-postmark-url-secret-0123456789';

function multipart(parts: { name: string; value: string | Buffer }[]): { body: Buffer; contentType: string } {
  const boundary = `b${randomBytes(8).toString('hex')}`;
  const chunks = parts.flatMap((p) => [Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"\r\n\r\n`), Buffer.from(p.value), Buffer.from('\r\n')]);
  return { body: Buffer.concat([...chunks, Buffer.from(`--${boundary}--\r\n`)]), contentType: `multipart/form-data; boundary=${boundary}` };
}
const mailgunFields = (token = randomBytes(25).toString('hex'), timestamp = String(Math.floor(Date.now() / 1000))) => [
  { name: 'timestamp', value: timestamp }, { name: 'token', value: token }, { name: 'signature', value: createHmac('sha256', signingKey).update(timestamp + token).digest('hex') },
];
const mailWithId = (id: string, from = 'ana@example.com.br', subject = 'Pedido 4711') => Buffer.from(
  `From: Ana <${from}>\r\nTo: support@shop.example\r\nSubject: ${subject}\r\nMessage-ID: <${id}@example.com.br>\r\nDate: ${new Date().toUTCString()}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOlá, onde está o meu pedido?\r\n`);

describe('POST /email/{inboxId}/inbound', () => {
  let t: TestGateway;
  let tenant: Tenant;
  const inbox: Record<string, string> = {};

  beforeAll(async () => {
    t = await startTestGateway();
    tenant = await createTenant(t);
    for (const provider of ['mailgun', 'sendgrid', 'postmark'] as const) {
      const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
        key: tenant.apiKey, body: { type: 'email', name: `Mail via ${provider}`, settings: { inboundWebhookProvider: provider }, credentials: { fromAddress: `support-${provider}@shop.example`, webhookSigningKey: provider === 'mailgun' ? signingKey : sharedSecret } },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      inbox[provider] = r.body.id;
    }
    const bare = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, { key: tenant.apiKey, body: { type: 'email', name: 'IMAP only', settings: {}, credentials: { fromAddress: 'imap@shop.example' } } });
    inbox.none = bare.body.id;
  });
  afterAll(() => t?.stop());

  const post = async (inboxId: string, body: Buffer, contentType: string, query = '') => {
    const response = await fetch(`${t.url}/email/${inboxId}/inbound${query}`, { method: 'POST', body, headers: { 'content-type': contentType } });
    return { status: response.status, body: await response.json() as any };
  };
  const messagesOfContact = async (address: string) => {
    const contacts = await t.api('GET', `/api/v1/accounts/${tenant.accountId}/contacts?limit=200`, { key: tenant.apiKey });
    const contact = contacts.body.items.find((c: { channelId: string }) => c.channelId === address);
    if (!contact) return [];
    const conversations = (await listAllConversations(t, tenant)).filter((c) => c.contactId === contact.id);
    const all = [];
    for (const c of conversations) all.push(...(await t.api('GET', `/api/v1/accounts/${tenant.accountId}/conversations/${c.id}/messages`, { key: tenant.apiKey })).body.items);
    return all;
  };

  it('a Mailgun body-mime post is queued before the answer, and its retries are stored once', async () => {
    const from = `ana.${randomBytes(3).toString('hex')}@example.com.br`;
    const { body, contentType } = multipart([...mailgunFields(), { name: 'recipient', value: 'support@shop.example' }, { name: 'body-mime', value: mailWithId(`mg-${from}`, from) }]);
    const answers = await Promise.all([1, 2, 3].map(() => post(inbox.mailgun!, body, contentType, '?format=mime')));
    for (const a of answers) expect(a.status, JSON.stringify(a.body)).toBe(200);
    expect(answers.map((a) => a.body.status)).toEqual(['queued', 'queued', 'queued']);
    expect(new Set(answers.map((a) => a.body.messageId)).size).toBe(1);
    const messages = await waitFor(() => messagesOfContact(from), (m) => m.length > 0, 'the mailgun mail stored');
    // The same mail posted again with a fresh signature (Mailgun's next attempt) is the same message.
    const again = multipart([...mailgunFields(), { name: 'body-mime', value: mailWithId(`mg-${from}`, from) }]);
    expect((await post(inbox.mailgun!, again.body, again.contentType)).status).toBe(200);
    // A later mail of the same contact, once stored, shows nothing else came in between.
    const marker = multipart([...mailgunFields(), { name: 'body-mime', value: mailWithId(`mg-marker-${from}`, from, 'Re: Pedido 4711') }]);
    expect((await post(inbox.mailgun!, marker.body, marker.contentType)).status).toBe(200);
    const all = await waitFor(() => messagesOfContact(from), (m) => m.length >= 2, 'the marker mail stored');
    expect(all.map((m) => m.externalId).sort()).toEqual([`<mg-${from}@example.com.br>`, `<mg-marker-${from}@example.com.br>`]);
    expect(messages[0]).toMatchObject({ channel: 'email', externalId: `<mg-${from}@example.com.br>`, content: { subject: 'Pedido 4711', text: 'Olá, onde está o meu pedido?' } });
  });

  it('SendGrid (raw mode, ?key=) and Postmark (Basic auth) posts reach conversations', async () => {
    const sg = multipart([{ name: 'email', value: fixture('gbk-foxmail-plain.eml') }, { name: 'envelope', value: '{"to":["support@shop.example"],"from":"lilei@qq.com"}' }]);
    const sgAnswer = await post(inbox.sendgrid!, sg.body, sg.contentType, `?key=${sharedSecret}`);
    expect(sgAnswer.status, JSON.stringify(sgAnswer.body)).toBe(200);
    const pmBody = Buffer.from(JSON.stringify({
      MessageID: randomBytes(8).toString('hex'), FromFull: { Email: 'taro@example.co.jp', Name: '山田太郎' }, ToFull: [{ Email: 'support@shop.example', Name: '' }],
      Subject: '商品が届きません', Date: new Date().toUTCString(), TextBody: '確認をお願いいたします。', Headers: [{ Name: 'Message-ID', Value: `<pm-${randomBytes(4).toString('hex')}@example.co.jp>` }], Attachments: [],
    }));
    const pm = await fetch(`${t.url}/email/${inbox.postmark}/inbound`, { method: 'POST', body: pmBody, headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`postmark:${sharedSecret}`).toString('base64')}` } });
    expect(pm.status).toBe(200);
    const lilei = await waitFor(() => messagesOfContact('lilei@qq.com'), (m) => m.length > 0, 'the sendgrid mail stored');
    expect(lilei[0].content).toMatchObject({ subject: '电饭煲无法加热，申请退换' });
    const taro = await waitFor(() => messagesOfContact('taro@example.co.jp'), (m) => m.length > 0, 'the postmark mail stored');
    expect(taro[0].content).toMatchObject({ subject: '商品が届きません', text: '確認をお願いいたします。' });
  });

  it('refuses bad posts with 401/400/403/404/413 and stores nothing', async () => {
    const before = (await listAllConversations(t, tenant)).length;
    const from = `mallory.${randomBytes(3).toString('hex')}@evil.example`;
    const mail = mailWithId(`evil-${from}`, from);

    const forged = multipart([{ name: 'timestamp', value: String(Math.floor(Date.now() / 1000)) }, { name: 'token', value: 'x'.repeat(50) }, { name: 'signature', value: 'ab'.repeat(32) }, { name: 'body-mime', value: mail }]);
    expect(await post(inbox.mailgun!, forged.body, forged.contentType)).toMatchObject({ status: 401, body: { error: { code: 'invalid_signature' } } });

    // A captured signature reused for another body within its freshness window.
    const fields = mailgunFields();
    const first = multipart([...fields, { name: 'body-mime', value: mailWithId(`ok-${from}`, `ok.${from}`) }]);
    expect((await post(inbox.mailgun!, first.body, first.contentType)).status).toBe(200);
    const replay = multipart([...fields, { name: 'body-mime', value: mail }]);
    expect(await post(inbox.mailgun!, replay.body, replay.contentType)).toMatchObject({ status: 401, body: { error: { code: 'replayed_token' } } });

    const stale = multipart([...mailgunFields(undefined, String(Math.floor(Date.now() / 1000) - 3600)), { name: 'body-mime', value: mail }]);
    expect(await post(inbox.mailgun!, stale.body, stale.contentType)).toMatchObject({ status: 401, body: { error: { code: 'stale_timestamp' } } });

    const malformed = multipart([...mailgunFields(), { name: 'body-mime', value: 'this is not a mail' }]);
    const bad = await post(inbox.mailgun!, malformed.body, malformed.contentType);
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/header/);

    expect(await post(inbox.sendgrid!, Buffer.from(multipart([{ name: 'email', value: mail }]).body), 'multipart/form-data; boundary=zz', '?key=wrong')).toMatchObject({ status: 401 });
    expect(await post(inbox.postmark!, Buffer.from('{"oops":'), 'application/json', `?key=${sharedSecret}`)).toMatchObject({ status: 400 });
    expect(await post(inbox.none!, mail, 'message/rfc822')).toMatchObject({ status: 403, body: { error: { code: 'webhook_not_configured' } } });
    expect(await post('inb_nope', mail, 'message/rfc822')).toMatchObject({ status: 404 });
    expect(await post(tenant.inboxId, mail, 'message/rfc822')).toMatchObject({ status: 404 });

    // A body declared over the limit is refused before it is read.
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${t.url}/email/${inbox.mailgun}/inbound`);
      const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(emailWebhookMaxBodyBytes + 1) } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
        req.destroy();
      });
      req.on('error', reject);
      req.write('--x\r\n');
    });
    expect(status).toBe(413);

    // Refusals happen before anything is queued: only the one good post is stored.
    await waitFor(() => messagesOfContact(`ok.${from}`), (m) => m.length === 1, 'the good post stored');
    expect(await messagesOfContact(from)).toEqual([]);
    expect((await listAllConversations(t, tenant)).length).toBe(before + 1);
  });

  it('a 30 MB mail over the inbox limit is accepted truncated with a note, not refused', async () => {
    const r = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey, body: { type: 'email', name: 'Small mail', settings: { inboundWebhookProvider: 'sendgrid', maxMailBytes: 10 * 1024 * 1024 }, credentials: { fromAddress: 'small@shop.example', webhookSigningKey: sharedSecret } },
    });
    const from = `big.${randomBytes(3).toString('hex')}@example.org`;
    const head = `From: <${from}>\r\nTo: small@shop.example\r\nSubject: video\r\nMessage-ID: <big-${from}>\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nThe fault on video.\r\n--x\r\nContent-Type: video/mp4; name="fault.mp4"\r\nContent-Transfer-Encoding: base64\r\n\r\n`;
    const raw = Buffer.concat([Buffer.from(head), Buffer.alloc(30 * 1024 * 1024, `${'QUJD'.repeat(19)}\r\n`), Buffer.from('\r\n--x--\r\n')]);
    const { body, contentType } = multipart([{ name: 'email', value: raw }]);
    const answer = await post(r.body.id, body, contentType, `?key=${sharedSecret}`);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const messages = await waitFor(() => messagesOfContact(from), (m) => m.length > 0, 'the truncated mail stored');
    expect(messages[0].content.text).toContain('The fault on video.');
    expect(messages[0].content.text).toContain('over the limit of 10485760 bytes');
    expect(messages[0].content.text).toContain('fault.mp4');
  });

  it('is published in the OpenAPI document', async () => {
    const doc = await t.api('GET', '/openapi.json');
    expect(doc.body.paths['/email/{inboxId}/inbound'].post.summary).toMatch(/Mailgun/);
  });
});
