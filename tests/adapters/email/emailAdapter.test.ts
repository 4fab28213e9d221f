// The SMTP adapter against a real SMTP server (npm smtp-server), and the threading helpers it uses.
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentSendError, SendOutcomeUnknownError, type DeliverOnce } from '../../../adapters/channelAdapter.ts';
import { EmailAdapter, threadHeadersOf } from '../../../adapters/email/emailAdapter.ts';
import { normalizeSubject, parseOutboundMessageId, conversationOfPlusAddress, replySubject } from '../../../src/email/emailThreading.ts';
import type { InboxRecord } from '../../../src/inboxes/inboxDirectory.ts';
import type { NormalizedMessage } from '../../../src/schema/message.ts';
import { startSmtpServer, type TestSmtpServer } from '../../support/smtpServer.ts';

const inbox = { id: 'inb_1', accountId: 'acc_1', type: 'email', name: 'Shop support', enabled: true, settings: {}, credentialNames: [], sealedCredentials: '', createdAt: '', updatedAt: '' } as InboxRecord;

function message(over: Partial<NormalizedMessage>): NormalizedMessage {
  return {
    id: 'msg_out1', accountId: 'acc_1', inboxId: 'inb_1', channel: 'email', direction: 'outbound', conversationId: 'cv_abc123def',
    contactId: 'ct_1', seq: 3, from: { channelId: 'support@shop.test' }, to: { channelId: 'chen@customer.test' },
    sentAt: '', receivedAt: '', content: { type: 'text', text: 'Hello' }, ...over,
  };
}

describe('EmailAdapter (nodemailer, pooled) against smtp-server', () => {
  let smtp: TestSmtpServer;
  let adapter: EmailAdapter;
  let credentials: Record<string, unknown>;
  beforeAll(async () => {
    smtp = await startSmtpServer();
    adapter = new EmailAdapter({ load: async () => ({ bytes: Buffer.from('%PDF-1.4 test'), contentType: 'application/pdf' }) }, { connectionTimeoutMs: 5000, allowPrivateTargets: true });
    credentials = { smtp: { host: '127.0.0.1', port: smtp.port, secure: false, user: 'gw', pass: 'pw' }, fromAddress: 'support@shop.test' };
  });
  afterAll(async () => { adapter.close(); await smtp.stop(); });

  it('sends text, HTML and an attachment with our Message-ID, Re: subject and the thread headers', async () => {
    const earlier = [
      message({ id: 'msg_in1', direction: 'inbound', externalId: '<m1@customer.test>', content: { type: 'text', text: 'Hi', subject: '=?x?= 订单 42' } }),
      message({ id: 'msg_out0', direction: 'outbound', externalId: '<cv_abc123def.msg_out0@shop.test>', content: { type: 'text', text: 'Looking' } }),
      message({ id: 'msg_in2', direction: 'inbound', externalId: '<m2@customer.test>', content: { type: 'text', text: 'Any news?', subject: 'Re: 订单 42' } }),
    ];
    const result = await adapter.send({
      inbox, credentials, to: 'chen@customer.test', earlier,
      message: message({ content: { type: 'text', text: 'Shipped.', html: '<p>Shipped.</p>', attachments: [{ url: 'https://files.test/invoice.pdf', contentType: 'application/pdf', name: 'invoice.pdf' }] } }),
    });
    expect(result).toEqual({ status: 'sent', externalId: '<cv_abc123def.msg_out1@shop.test>' });
    const mail = await smtp.nth(1);
    expect(mail.parsed.messageId).toBe('<cv_abc123def.msg_out1@shop.test>');
    expect(mail.parsed.subject).toBe('Re: 订单 42');
    expect(mail.parsed.inReplyTo).toBe('<m2@customer.test>');
    expect(mail.parsed.references).toEqual(['<m1@customer.test>', '<cv_abc123def.msg_out0@shop.test>', '<m2@customer.test>']);
    expect(mail.parsed.from?.value[0]).toEqual({ name: 'Shop support', address: 'support@shop.test' });
    expect(mail.parsed.replyTo?.value[0]?.address).toBe('support+cv_abc123def@shop.test');
    expect(mail.parsed.html).toContain('<p>Shipped.</p>');
    expect(mail.parsed.attachments.map((a) => [a.filename, a.contentType, a.content.toString()])).toEqual([['invoice.pdf', 'application/pdf', '%PDF-1.4 test']]);
  });

  it('a recipient the server refuses (550) is a permanent failure, not retried', async () => {
    smtp.refuse('gone@customer.test');
    const error = await adapter.send({ inbox, credentials, to: 'gone@customer.test', message: message({}) }).catch((e) => e);
    expect(error).toBeInstanceOf(PermanentSendError);
    expect(error.code).toBe('smtp_550');
  });

  it('an inbox without SMTP credentials fails clearly', async () => {
    const error = await adapter.send({ inbox, credentials: { fromAddress: 'support@shop.test' }, to: 'a@b.test', message: message({}) }).catch((e) => e);
    expect(error).toBeInstanceOf(PermanentSendError);
    expect(error.code).toBe('smtp_not_configured');
  });
});

/**
 * A bare SMTP server that accepts the session and then drops the connection, without a reply, at one step:
 * after the whole mail (the terminating dot) or at RCPT TO. Counts the mails it saw to their end.
 */
async function startDroppingSmtp(dropAt: 'end-of-data' | 'rcpt') {
  const seen = { completeMails: 0 };
  const server: Server = createServer((socket: Socket) => {
    let inData = false;
    let buffered = '';
    socket.write('220 drop.test ESMTP\r\n');
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      if (inData) {
        if (!buffered.includes('\r\n.\r\n')) return;
        seen.completeMails++;
        socket.destroy();
        return;
      }
      let end: number;
      while ((end = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, end).toUpperCase();
        buffered = buffered.slice(end + 2);
        if (line.startsWith('EHLO')) socket.write('250-drop.test\r\n250 8BITMIME\r\n');
        else if (line.startsWith('MAIL FROM')) socket.write('250 ok\r\n');
        else if (line.startsWith('RCPT TO')) { if (dropAt === 'rcpt') { socket.destroy(); return; } socket.write('250 ok\r\n'); }
        else if (line === 'DATA') { socket.write('354 go ahead\r\n'); inData = true; return; }
        else if (line === 'QUIT') { socket.end('221 bye\r\n'); return; }
        else socket.write('250 ok\r\n');
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { port: (server.address() as { port: number }).port, seen, stop: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('EmailAdapter: a lost connection, told apart by how far the mail got', () => {
  const credentialsFor = (port: number) => ({ smtp: { host: '127.0.0.1', port, secure: false, user: '', pass: '' }, fromAddress: 'support@shop.test' });

  it('dropped after the whole mail and before the server confirmed it: an unknown outcome, wrapped in deliverOnce', async () => {
    const server = await startDroppingSmtp('end-of-data');
    const adapter = new EmailAdapter(undefined, { connectionTimeoutMs: 2000, allowPrivateTargets: true });
    const wrapped: number[] = [];
    const deliverOnce: DeliverOnce = async (call, longestMs) => { wrapped.push(longestMs); return call(); };
    try {
      const error = await adapter.send({ inbox, credentials: credentialsFor(server.port), to: 'chen@customer.test', message: message({}), deliverOnce }).catch((e) => e);
      expect(error).toBeInstanceOf(SendOutcomeUnknownError);
      expect(error.message).toMatch(/after the whole mail was sent and before the server confirmed it/);
      expect(server.seen.completeMails).toBe(1);
      expect(wrapped).toEqual([300_000]);
    } finally {
      adapter.close();
      await server.stop();
    }
  });

  it('dropped before the mail was sent (at RCPT TO), or no server at all: not sent, so a plain retry', async () => {
    const server = await startDroppingSmtp('rcpt');
    const adapter = new EmailAdapter(undefined, { connectionTimeoutMs: 2000, allowPrivateTargets: true });
    try {
      const dropped = await adapter.send({ inbox, credentials: credentialsFor(server.port), to: 'chen@customer.test', message: message({}) }).catch((e) => e);
      expect(dropped).toBeInstanceOf(Error);
      expect(dropped).not.toBeInstanceOf(SendOutcomeUnknownError);
      expect(dropped).not.toBeInstanceOf(PermanentSendError);
      expect(server.seen.completeMails).toBe(0);
      await server.stop();
      const refused = await adapter.send({ inbox, credentials: credentialsFor(server.port), to: 'chen@customer.test', message: message({}) }).catch((e) => e);
      expect(refused).toBeInstanceOf(Error);
      expect(refused).not.toBeInstanceOf(SendOutcomeUnknownError);
      expect(refused).not.toBeInstanceOf(PermanentSendError);
    } finally {
      adapter.close();
    }
  });
});

describe('threading helpers', () => {
  it('strips reply and forward prefixes of common clients and languages', () => {
    for (const s of ['Re: Order 42', 'RE: RE: order 42', 'Fwd: Re: Order 42', 'AW: Order 42', 'SV: Order  42', '回复: Order 42', '回复：Order 42', '转发: Order 42', 'Re[2]: Order 42', '[ext] Re: Order 42']) {
      expect(normalizeSubject(s)).toBe('order 42');
    }
    expect(replySubject('Re: Order 42')).toBe('Re: Order 42');
    expect(replySubject('Order 42')).toBe('Re: Order 42');
  });

  it('reads our Message-IDs and plus addresses back, and nothing else', () => {
    expect(parseOutboundMessageId('<cv_abc123def.msg_1@shop.test>')).toEqual({ conversationId: 'cv_abc123def', messageId: 'msg_1' });
    expect(parseOutboundMessageId('<CAF123@mail.gmail.com>')).toBeUndefined();
    expect(conversationOfPlusAddress('support@shop.test', 'Support+cv_abc123def@shop.test')).toBe('cv_abc123def');
    expect(conversationOfPlusAddress('support@shop.test', 'sales+cv_abc123def@shop.test')).toBeUndefined();
    expect(conversationOfPlusAddress('support@shop.test', 'support+cv_abc123def@evil.test')).toBeUndefined();
  });

  it('keeps the root and the newest ids when a thread grows past 20', () => {
    const earlier = Array.from({ length: 30 }, (_, i) => message({ id: `msg_${i}`, direction: i % 2 ? 'outbound' : 'inbound', externalId: `<id${i}@x.test>` }));
    const h = threadHeadersOf(earlier);
    expect(h.references).toHaveLength(20);
    expect(h.references[0]).toBe('<id0@x.test>');
    expect(h.references.at(-1)).toBe('<id29@x.test>');
    expect(h.inReplyTo).toBe('<id28@x.test>');
  });
});

describe('EmailAdapter SMTP pools', () => {
  let smtp: TestSmtpServer;
  let adapter: EmailAdapter;
  const smtpSettings = (user: string) => ({ smtp: { host: '127.0.0.1', port: smtp.port, secure: false, user, pass: 'pw' }, fromAddress: 'support@shop.test' });
  const connections = async (count: number) => {
    const deadline = Date.now() + 5000;
    while (smtp.openConnections() !== count) {
      if (Date.now() > deadline) throw new Error(`SMTP: ${smtp.openConnections()} connections open, expected ${count}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  beforeAll(async () => {
    smtp = await startSmtpServer();
    adapter = new EmailAdapter(undefined, { connectionTimeoutMs: 5000, idleCloseMs: 2000, allowPrivateTargets: true });
  });
  afterAll(async () => { adapter.close(); await smtp.stop(); });

  it('replaces the pool when the SMTP settings change, without failing a send in flight on the old one', async () => {
    const [onOld, onNew] = await Promise.all([
      adapter.send({ inbox, credentials: smtpSettings('gw'), to: 'a@customer.test', message: message({ id: 'msg_pool1' }) }),
      adapter.send({ inbox, credentials: smtpSettings('gw-changed'), to: 'b@customer.test', message: message({ id: 'msg_pool2' }) }),
    ]);
    expect([onOld.status, onNew.status]).toEqual(['sent', 'sent']);
    await connections(1);
  });

  it('closes a pool unused for idleCloseMs (its inbox deleted or disabled), and opens a new one for a later send', async () => {
    await connections(1);
    await new Promise((r) => setTimeout(r, 1000));
    expect(smtp.openConnections()).toBe(1);
    await connections(0);
    const later = await adapter.send({ inbox, credentials: smtpSettings('gw-changed'), to: 'c@customer.test', message: message({ id: 'msg_pool3' }) });
    expect(later.status).toBe('sent');
    expect(smtp.openConnections()).toBe(1);
  });
});
