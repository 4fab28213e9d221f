// Mailgun, SendGrid and Postmark inbound posts -> ParsedMail, and every way a post is refused.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { InboundWebhookRequest } from '../../../adapters/email/inboundEmailProvider.ts';
import { MailgunInbound, verifyMailgunSignature } from '../../../adapters/email/mailgunInbound.ts';
import { PostmarkInbound } from '../../../adapters/email/postmarkInbound.ts';
import { SendgridInbound } from '../../../adapters/email/sendgridInbound.ts';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/email/${name}`, import.meta.url));
const signingKey = 'key-3ax6xnjp29jd6fds4gc373sgvjxteol0';
const secret = 'p0stmark-and-sendgrid-shared-secret-123';
const now = new Date('2026-12-01T22:00:00Z');
const timestamp = String(now.getTime() / 1000);

type Part = { name: string; value: string | Buffer; filename?: string; type?: string };
/** A multipart/form-data body with byte-exact values (FormData would re-encode text as UTF-8). */
function multipart(parts: Part[]): { body: Buffer; contentType: string } {
  const boundary = 'xYzZY-boundary-1234';
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`;
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`, 'utf8'));
    chunks.push(typeof p.value === 'string' ? Buffer.from(p.value, 'utf8') : p.value, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

const request = (body: Buffer, contentType: string, extra: Partial<InboundWebhookRequest> = {}): InboundWebhookRequest =>
  ({ body, contentType, headers: {}, query: {}, now, ...extra });
const mailgunSignature = (token: string, ts = timestamp, key = signingKey) => createHmac('sha256', key).update(ts + token).digest('hex');
const signed = (token = 'a'.repeat(50), ts = timestamp): Part[] => [
  { name: 'timestamp', value: ts }, { name: 'token', value: token }, { name: 'signature', value: mailgunSignature(token, ts) },
];

describe('Mailgun', () => {
  const mailgun = new MailgunInbound();

  it('raw MIME (body-mime) keeps 8-bit bytes exact: a GBK mail is read as GBK', async () => {
    const raw = Buffer.concat([
      Buffer.from('From: lilei@qq.com\r\nTo: support@shop.example\r\nSubject: =?GBK?B?zcu79Q==?=\r\nMessage-ID: <mg-raw-1@qq.com>\r\nContent-Type: text/plain; charset=GBK\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'),
      Buffer.from([0xc7, 0xeb, 0xcd, 0xcb, 0xbf, 0xee]), // 请退款
    ]);
    const { body, contentType } = multipart([{ name: 'recipient', value: 'support@shop.example' }, ...signed(), { name: 'body-mime', value: raw }]);
    const result = await mailgun.receive(request(body, contentType), { webhookSigningKey: signingKey });
    expect(result.mail).toMatchObject({ messageId: '<mg-raw-1@qq.com>', subject: '退货', text: '请退款' });
    expect(result.recipients).toEqual(['support@shop.example']);
    expect(result.replayToken).toEqual({ value: 'a'.repeat(50), ttlSeconds: 660 });
  });

  it('raw MIME posted urlencoded (no attachments) reads the same', async () => {
    const fields = { ...Object.fromEntries(signed().map((p) => [p.name, p.value as string])), 'body-mime': fixture('big5.eml').toString('latin1') };
    const body = Buffer.from(Object.entries(fields).map(([k, v]) => `${k}=${[...Buffer.from(v, 'latin1')].map((b) => (/[A-Za-z0-9]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`)).join('')}`).join('&'));
    const result = await mailgun.receive(request(body, 'application/x-www-form-urlencoded'), { webhookSigningKey: signingKey });
    expect(result.mail.subject).toBe('產品保固詢問');
    expect(result.mail.text).toContain('購買後一年內是否可以免費維修');
  });

  it('the parsed form: message-headers, bodies, attachments with content-id-map', async () => {
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    const pdf = Buffer.from([0x25, 0x50, 0x44, 0x46, 0, 1, 2, 255, 254]);
    const headers = [
      ['Received', 'from mail-ot1.google.com'], ['From', '=?UTF-8?B?5byg5LiJ?= <zhang@example.cn>'], ['To', 'Support <support@shop.example>'],
      ['Subject', 'Re: 订单 4711'], ['Message-Id', '<CAF123@mail.gmail.com>'], ['In-Reply-To', '<gw.msg_1@shop.example>'],
      ['References', '<a@x> <gw.msg_1@shop.example>'], ['Date', 'Tue, 01 Dec 2026 21:59:00 +0800'], ['Content-Type', 'multipart/mixed; boundary="zzz"'],
    ];
    const { body, contentType } = multipart([
      { name: 'recipient', value: 'support@shop.example' }, { name: 'sender', value: 'zhang@example.cn' }, { name: 'from', value: '张三 <zhang@example.cn>' },
      { name: 'subject', value: 'Re: 订单 4711' }, { name: 'body-plain', value: '好的\r\n\r\nOn Tue, Dec 1, 2026 Support <support@shop.example> wrote:\r\n> 已发货' },
      { name: 'body-html', value: '<p>好的</p><img src="cid:ii_kx1"><script>x()</script>' },
      { name: 'message-headers', value: JSON.stringify(headers) }, { name: 'content-id-map', value: JSON.stringify({ '<ii_kx1>': 'attachment-2' }) },
      { name: 'attachment-count', value: '2' }, ...signed(),
      { name: 'attachment-1', value: pdf, filename: '发票.pdf', type: 'application/pdf' },
      { name: 'attachment-2', value: png, filename: 'image.png', type: 'image/png' },
    ]);
    const { mail } = await mailgun.receive(request(body, contentType), { webhookSigningKey: signingKey });
    expect(mail).toMatchObject({
      messageId: '<CAF123@mail.gmail.com>', inReplyTo: '<gw.msg_1@shop.example>', references: ['<a@x>', '<gw.msg_1@shop.example>'],
      from: { address: 'zhang@example.cn', name: '张三' }, subject: 'Re: 订单 4711', replyText: '好的',
    });
    expect(mail.date?.toISOString()).toBe('2026-12-01T13:59:00.000Z');
    expect(mail.html).toBe('<p>好的</p><img src="cid:ii_kx1" />');
    expect(mail.attachments.map((a) => [a.filename, a.contentType, a.contentId, a.inline])).toEqual([['发票.pdf', 'application/pdf', undefined, false], ['image.png', 'image/png', 'ii_kx1', true]]);
    expect(mail.attachments[0]!.content).toEqual(pdf);
    expect(mail.attachments[1]!.content).toEqual(png);
  });

  it.each([
    ['a bad signature', () => [{ name: 'timestamp', value: timestamp }, { name: 'token', value: 't'.repeat(50) }, { name: 'signature', value: mailgunSignature('other') }], 'invalid_signature'],
    ['a signature by another key', () => [{ name: 'timestamp', value: timestamp }, { name: 'token', value: 't'.repeat(50) }, { name: 'signature', value: mailgunSignature('t'.repeat(50), timestamp, 'key-other') }], 'invalid_signature'],
    ['no signature', () => [{ name: 'timestamp', value: timestamp }, { name: 'token', value: 't'.repeat(50) }], 'invalid_signature'],
    ['a signature that is not hex', () => [{ name: 'timestamp', value: timestamp }, { name: 'token', value: 't' }, { name: 'signature', value: 'zz'.repeat(32) }], 'invalid_signature'],
    ['a stale timestamp', () => signed('t'.repeat(50), String(now.getTime() / 1000 - 301)), 'stale_timestamp'],
    ['a timestamp from the future', () => signed('t'.repeat(50), String(now.getTime() / 1000 + 301)), 'stale_timestamp'],
  ])('refuses %s with 401', async (_name, parts, code) => {
    const { body, contentType } = multipart([...(parts() as Part[]), { name: 'body-mime', value: 'From: a@b.example\r\n\r\nhi' }]);
    await expect(mailgun.receive(request(body, contentType), { webhookSigningKey: signingKey })).rejects.toMatchObject({ status: 401, code });
  });

  it('refuses every post while the inbox has no signing key', async () => {
    const { body, contentType } = multipart([...signed(), { name: 'body-mime', value: 'From: a@b.example\r\n\r\nhi' }]);
    await expect(mailgun.receive(request(body, contentType), {})).rejects.toMatchObject({ status: 401, code: 'webhook_secret_missing' });
  });

  it('malformed posts are 400 with a reason', async () => {
    await expect(mailgun.receive(request(Buffer.from('{}'), 'application/json'), { webhookSigningKey: signingKey })).rejects.toMatchObject({ status: 400 });
    await expect(mailgun.receive(request(Buffer.from('--x\r\nbroken'), 'multipart/form-data'), { webhookSigningKey: signingKey })).rejects.toMatchObject({ status: 400 });
    const noMail = multipart(signed());
    await expect(mailgun.receive(request(noMail.body, noMail.contentType), { webhookSigningKey: signingKey })).rejects.toMatchObject({ status: 400, message: expect.stringContaining('body-mime') });
    const badHeaders = multipart([...signed(), { name: 'message-headers', value: '[["From"' }]);
    await expect(mailgun.receive(request(badHeaders.body, badHeaders.contentType), { webhookSigningKey: signingKey })).rejects.toMatchObject({ status: 400, message: 'the form field message-headers is not valid JSON' });
    const notMail = multipart([...signed(), { name: 'body-mime', value: 'hello there' }]);
    await expect(mailgun.receive(request(notMail.body, notMail.contentType), { webhookSigningKey: signingKey })).rejects.toMatchObject({ status: 400 });
  });

  it('verifyMailgunSignature accepts the documented vector shape', () => {
    const token = '50-character-token-from-mailgun-abcdefghijklmnopqr';
    expect(() => verifyMailgunSignature({ timestamp, token, signature: mailgunSignature(token).toUpperCase() }, signingKey, now)).not.toThrow();
  });
});

describe('SendGrid Inbound Parse', () => {
  const sendgrid = new SendgridInbound();
  const keyed = { query: { key: secret } };

  it('raw mode: the email field is the whole mail, byte exact', async () => {
    const { body, contentType } = multipart([
      { name: 'to', value: 'support@shop.example' }, { name: 'envelope', value: JSON.stringify({ to: ['support@shop.example'], from: 'lilei@qq.com' }) },
      { name: 'email', value: fixture('foxmail-reply.eml') }, { name: 'charsets', value: '{"to":"UTF-8","subject":"UTF-8","from":"UTF-8"}' },
    ]);
    const result = await sendgrid.receive(request(body, contentType, keyed), { webhookSigningKey: secret });
    expect(result.mail.replyText).toBe('好的，我明天在家等快递。');
    expect(result.mail.messageId).toBe('<tencent_6A7B8C9D0E1F2A3B@qq.com>');
    expect(result.recipients).toEqual(['support@shop.example']);
  });

  it('parsed mode: fields decoded by the charsets SendGrid names, attachments with their info', async () => {
    const gbkText = Buffer.from([0xc4, 0xfa, 0xba, 0xc3, 0xa3, 0xac, 0xc7, 0xeb, 0xcd, 0xcb, 0xbf, 0xee]); // 您好，请退款
    const zip = Buffer.from([0x50, 0x4b, 3, 4, 0, 0, 0xff, 0x80]);
    const headers = 'Received: by mx0047p1mdw1.sendgrid.net\nFrom: =?GBK?B?wO7A1w==?= <lilei@qq.com>\nTo: support@shop.example\nSubject: =?GBK?B?zcu/7g==?=\nMessage-ID: <sg-1@qq.com>\nReferences: <gw.msg_9@shop.example>\n <other@qq.com>\nDate: Tue, 1 Dec 2026 21:58:00 +0800\nAuto-Submitted: no\n';
    const { body, contentType } = multipart([
      { name: 'headers', value: headers }, { name: 'text', value: gbkText }, { name: 'html', value: '<div>您好，请退款<img src="cid:img1"></div>' },
      { name: 'from', value: '李雷 <lilei@qq.com>' }, { name: 'to', value: 'support@shop.example' }, { name: 'subject', value: '退款' },
      { name: 'charsets', value: JSON.stringify({ to: 'UTF-8', html: 'UTF-8', subject: 'UTF-8', from: 'UTF-8', text: 'GBK' }) },
      { name: 'envelope', value: '{"to":["support@shop.example"],"from":"lilei@qq.com"}' },
      { name: 'attachments', value: '2' },
      { name: 'attachment-info', value: JSON.stringify({ attachment1: { filename: '报价.zip', name: '报价.zip', type: 'application/zip' }, attachment2: { filename: 'img1.png', type: 'image/png', 'content-id': 'img1' } }) },
      { name: 'content-ids', value: '{"img1":"attachment2"}' },
      { name: 'attachment1', value: zip, filename: '报价.zip', type: 'application/zip' },
      { name: 'attachment2', value: Buffer.from('89504e47', 'hex'), filename: 'img1.png', type: 'image/png' },
    ]);
    const { mail } = await sendgrid.receive(request(body, contentType, keyed), { webhookSigningKey: secret });
    expect(mail).toMatchObject({ messageId: '<sg-1@qq.com>', subject: '退款', from: { address: 'lilei@qq.com', name: '李雷' }, text: '您好，请退款', references: ['<gw.msg_9@shop.example>', '<other@qq.com>'] });
    expect(mail.loop.automated).toBe(false);
    expect(mail.attachments.map((a) => [a.filename, a.contentType, a.contentId, a.inline, a.content.toString('hex')])).toEqual([
      ['报价.zip', 'application/zip', undefined, false, zip.toString('hex')], ['img1.png', 'image/png', 'img1', true, '89504e47'],
    ]);
  });

  it('Basic auth with the secret as password is accepted too', async () => {
    const { body, contentType } = multipart([{ name: 'email', value: fixture('big5.eml') }]);
    const authorization = `Basic ${Buffer.from(`inbound:${secret}`).toString('base64')}`;
    const { mail } = await sendgrid.receive(request(body, contentType, { headers: { authorization } }), { webhookSigningKey: secret });
    expect(mail.subject).toBe('產品保固詢問');
  });

  it.each([
    ['no key', {}, 'missing_credentials'],
    ['a wrong key', { query: { key: `${secret}x` } }, 'invalid_credentials'],
    ['a wrong Basic password', { headers: { authorization: `Basic ${Buffer.from('inbound:nope').toString('base64')}` } }, 'invalid_credentials'],
  ])('refuses %s with 401', async (_name, extra, code) => {
    const { body, contentType } = multipart([{ name: 'email', value: fixture('big5.eml') }]);
    await expect(sendgrid.receive(request(body, contentType, extra), { webhookSigningKey: secret })).rejects.toMatchObject({ status: 401, code });
  });

  it('refuses posts while the inbox secret is missing or guessable', async () => {
    const { body, contentType } = multipart([{ name: 'email', value: fixture('big5.eml') }]);
    await expect(sendgrid.receive(request(body, contentType, { query: { key: 'short' } }), { webhookSigningKey: 'short' })).rejects.toMatchObject({ status: 401, code: 'webhook_secret_missing' });
  });

  it('a post with neither email nor headers is 400', async () => {
    const { body, contentType } = multipart([{ name: 'text', value: 'hi' }]);
    await expect(sendgrid.receive(request(body, contentType, keyed), { webhookSigningKey: secret })).rejects.toMatchObject({ status: 400 });
  });
});

describe('Postmark', () => {
  const postmark = new PostmarkInbound();
  const keyed = { query: { key: secret } };
  const sample = {
    FromName: 'Ana, Souza', MessageStream: 'inbound', From: 'ana@example.com.br', FromFull: { Email: 'ana@example.com.br', Name: 'Ana, "Souza"', MailboxHash: '' },
    To: 'support+c_123@inbound.shop.example', ToFull: [{ Email: 'support+c_123@inbound.shop.example', Name: '', MailboxHash: 'c_123' }],
    Cc: '', CcFull: [], Bcc: '', BccFull: [], OriginalRecipient: 'support+c_123@inbound.shop.example', Subject: 'Re: 订单 4711', MessageID: '73e6d360-66eb-11e1-8e72-a8904824019b',
    ReplyTo: '', MailboxHash: 'c_123', Date: 'Tue, 1 Dec 2026 18:00:00 -0300', TextBody: 'Obrigada!\n\nOn Tue, Dec 1, 2026 Support wrote:\n> Enviado', HtmlBody: '<p>Obrigada!</p>',
    StrippedTextReply: 'Obrigada!', Tag: '',
    Headers: [{ Name: 'X-Spam-Status', Value: 'No' }, { Name: 'Message-ID', Value: '<CAF=pm1@mail.gmail.com>' }, { Name: 'In-Reply-To', Value: '<gw.msg_7@shop.example>' }, { Name: 'References', Value: '<gw.msg_7@shop.example>' }],
    Attachments: [{ Name: 'nota fiscal.pdf', Content: Buffer.from([37, 80, 68, 70, 0, 200]).toString('base64'), ContentType: 'application/pdf', ContentLength: 6, ContentID: '' }],
  };

  it('reads the JSON: RFC Message-ID from Headers, Postmark MessageID kept apart, names with commas and quotes', async () => {
    const result = await postmark.receive(request(Buffer.from(JSON.stringify(sample)), 'application/json', keyed), { webhookSigningKey: secret });
    expect(result.providerMessageId).toBe('73e6d360-66eb-11e1-8e72-a8904824019b');
    expect(result.recipients).toEqual(['support+c_123@inbound.shop.example']);
    expect(result.mail).toMatchObject({
      messageId: '<CAF=pm1@mail.gmail.com>', inReplyTo: '<gw.msg_7@shop.example>', references: ['<gw.msg_7@shop.example>'], subject: 'Re: 订单 4711',
      from: { address: 'ana@example.com.br', name: 'Ana, "Souza"' }, to: [{ address: 'support+c_123@inbound.shop.example', name: '' }], replyText: 'Obrigada!', html: '<p>Obrigada!</p>',
    });
    expect(result.mail.attachments).toMatchObject([{ filename: 'nota fiscal.pdf', contentType: 'application/pdf', size: 6, inline: false }]);
    expect(result.mail.attachments[0]!.content).toEqual(Buffer.from([37, 80, 68, 70, 0, 200]));
  });

  it('RawEmail, when included, is parsed instead', async () => {
    const post = { ...sample, RawEmail: fixture('iso-2022-jp.eml').toString('latin1') };
    const { mail } = await postmark.receive(request(Buffer.from(JSON.stringify(post)), 'application/json', keyed), { webhookSigningKey: secret });
    expect(mail.subject).toBe('商品が届きません');
  });

  it('refuses a wrong key with 401, bad JSON and bad shapes with 400', async () => {
    const body = Buffer.from(JSON.stringify(sample));
    await expect(postmark.receive(request(body, 'application/json', { query: { key: 'x'.repeat(30) } }), { webhookSigningKey: secret })).rejects.toMatchObject({ status: 401 });
    await expect(postmark.receive(request(Buffer.from('{"From":'), 'application/json', keyed), { webhookSigningKey: secret })).rejects.toMatchObject({ status: 400, message: 'the body is not valid JSON' });
    await expect(postmark.receive(request(Buffer.from('{"Headers":"no"}'), 'application/json', keyed), { webhookSigningKey: secret })).rejects.toMatchObject({ status: 400, message: expect.stringContaining('Headers') });
    await expect(postmark.receive(request(Buffer.from('{}'), 'application/json', keyed), { webhookSigningKey: secret })).rejects.toMatchObject({ status: 400, message: 'the post carries no mail headers' });
    const badAttachment = { ...sample, Attachments: [{ Name: 'x', Content: '***', ContentType: 'text/plain' }] };
    await expect(postmark.receive(request(Buffer.from(JSON.stringify(badAttachment)), 'application/json', keyed), { webhookSigningKey: secret })).rejects.toMatchObject({ status: 400 });
  });

  it('a post over the mail limit is kept truncated with a note', async () => {
    const post = { ...sample, Attachments: [{ Name: 'big.bin', Content: Buffer.alloc(300_000, 7).toString('base64'), ContentType: 'application/octet-stream' }] };
    const { mail } = await postmark.receive(request(Buffer.from(JSON.stringify(post)), 'application/json', keyed), { webhookSigningKey: secret }, { maxBytes: 100_000 });
    expect(mail.attachments).toEqual([]);
    expect(mail.truncated?.droppedAttachments).toEqual([{ filename: 'big.bin', contentType: 'application/octet-stream' }]);
    expect(mail.text).toContain('attachments left out: big.bin');
    expect(mail.messageId).toBe('<CAF=pm1@mail.gmail.com>');
  });
});
