// Logs never carry a full phone number, a full email address, or a secret.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, maskPersonalData } from '../src/logger.ts';

/** A pino destination that keeps every line. */
function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) { lines.push(...chunk.toString().split('\n').filter(Boolean)); done(); },
  });
  const log = createLogger('trace', stream);
  return { log, lines, text: () => lines.join('\n'), entries: () => lines.map((line) => JSON.parse(line)) };
}

const phones = ['+8613800138000', '+1 415 867 5309', '13800138000', '(415) 867-5309', '+44 20 7946 0958'];

describe('createLogger', () => {
  it('masks phone numbers in messages, fields, nested objects and errors, keeping the last digits', () => {
    const { log, text, entries } = capture();
    log.info(`inbound SMS from ${phones[0]} to ${phones[1]}`);
    log.info({ from: phones[2], message: { to: { channelId: phones[3] } }, list: [phones[4]] }, 'sent');
    log.error({ err: new Error(`provider rejected ${phones[0]}`) }, 'send failed');
    log.warn('call %s back', phones[1]);
    const output = text();
    for (const phone of phones) {
      expect(output).not.toContain(phone);
      expect(output).not.toContain(phone.replace(/\D/g, ''));
    }
    expect(output).toContain('***000');
    expect(output).toContain('***309');
    expect(entries()[1].message.to.channelId).toMatch(/\*\*\*309$/);
    // The error keeps its type and its stack, masked like the message.
    expect(entries()[2].err).toMatchObject({ type: 'Error', message: 'provider rejected +***000' });
    expect(entries()[2].err.stack).toMatch(/^Error: provider rejected \+\*\*\*000\n/);
  });

  it('masks errors with causes and extra fields', () => {
    const { log, text, entries } = capture();
    const cause = new TypeError('number 13800138000 is blocked');
    const error = Object.assign(new RangeError('could not text +1 415 867 5309', { cause }), { to: '+8613800138000', code: 21610 });
    log.error({ err: error }, 'send failed');
    expect(text()).not.toMatch(/13800138000|4158675309|415 867 5309/);
    expect(entries()[0].err).toMatchObject({ type: 'RangeError', code: 21610, to: '+***000' });
    expect(entries()[0].err.message).toContain('***000 is blocked');
  });

  it('masks email addresses but keeps the domain', () => {
    const { log, text, entries } = capture();
    log.info({ from: 'jane.doe@example.com' }, 'mail from alice.smith@shop.example.org');
    const output = text();
    expect(output).not.toContain('jane.doe@example.com');
    expect(output).not.toContain('alice.smith');
    expect(entries()[0].from).toBe('j***@example.com');
    expect(entries()[0].msg).toContain('a***@shop.example.org');
  });

  it('redacts credentials, passwords, tokens and authorization headers wherever they sit', () => {
    const { log, text, entries } = capture();
    log.info({
      credentials: { appSecret: 'wx-app-secret-value' },
      password: 'hunter2-password',
      token: 'agent-token-value',
      authorization: 'Bearer top-secret-key',
      inbox: { credentials: { authToken: 'twilio-auth-token' }, token: 'nested-token-value' },
      req: { headers: { authorization: 'Bearer header-secret', cookie: 'session=cookie-secret' } },
      headers: { authorization: 'Basic basic-secret' },
    }, 'configured');
    const output = text();
    for (const secret of ['wx-app-secret-value', 'hunter2-password', 'agent-token-value', 'top-secret-key', 'twilio-auth-token',
      'nested-token-value', 'header-secret', 'cookie-secret', 'basic-secret']) {
      expect(output).not.toContain(secret);
    }
    const [entry] = entries();
    expect(entry).toMatchObject({
      credentials: '[redacted]', password: '[redacted]', token: '[redacted]', authorization: '[redacted]',
      inbox: { credentials: '[redacted]', token: '[redacted]' },
      req: { headers: { authorization: '[redacted]', cookie: '[redacted]' } },
      headers: { authorization: '[redacted]' },
    });
  });

  it('keeps ordinary fields, ids and short numbers as they are', () => {
    const { log, entries } = capture();
    log.info({ conversationId: 'cnv_01HZX', seq: 42, port: 3000, orderNo: 'A-1234' }, 'assigned in 250 ms');
    expect(entries()[0]).toMatchObject({ conversationId: 'cnv_01HZX', seq: 42, port: 3000, orderNo: 'A-1234', msg: 'assigned in 250 ms', level: 30 });
  });

  it('honours the level', () => {
    const lines: string[] = [];
    const log = createLogger('warn', new Writable({ write(chunk: Buffer, _e, done) { lines.push(chunk.toString()); done(); } }));
    log.info('hidden');
    log.warn('shown');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!).msg).toBe('shown');
  });
});

describe('maskPersonalData', () => {
  it('leaves text without personal data alone', () => {
    expect(maskPersonalData('queue depth 12, took 350 ms')).toBe('queue depth 12, took 350 ms');
    expect(maskPersonalData('2024-05-01T10:00:00.000Z')).toBe('2024-05-01T10:00:00.000Z');
    expect(maskPersonalData('at 2024-05-01 10:00 from 13800138000')).toBe('at 2024-05-01 10:00 from ***000');
    expect(maskPersonalData('2024-05-01 13800138000')).toBe('2024-05-01 ***000');
  });

  it('keeps IPv4 addresses readable, and still masks a phone number beside one', () => {
    expect(maskPersonalData('refused 192.168.10.200: a private address')).toBe('refused 192.168.10.200: a private address');
    expect(maskPersonalData('connect ECONNREFUSED 10.0.0.5:8080')).toBe('connect ECONNREFUSED 10.0.0.5:8080');
    expect(maskPersonalData('from 203.0.113.77 for 13800138000')).toBe('from 203.0.113.77 for ***000');
    expect(maskPersonalData('13800138000 at 172.16.254.1.')).toBe('***000 at 172.16.254.1.');
    // Not an address: a part over 255, or a fifth group, is a number written with dots.
    expect(maskPersonalData('call 415.867.5309')).toBe('call ***309');
    expect(maskPersonalData('call 06.12.34.56.78')).toBe('call ***678');
    expect(maskPersonalData('call 212.555.123.4567')).toBe('call ***567');
  });
});
