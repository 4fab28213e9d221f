import { describe, expect, it } from 'vitest';
import { MailParseError, parseMail } from '../../../adapters/email/parseMail.ts';

const related = [
  'From: =?UTF-8?B?5byg5LiJ?= <zhang@example.com>', 'To: support@shop.example', 'Subject: =?GBK?B?xOO6ww==?=',
  'Message-ID: <a1@example.com>', 'References: <r1@x>', 'Date: Tue, 1 Dec 2026 10:00:00 +0800',
  'Content-Type: multipart/related; boundary="b"', '', '--b', 'Content-Type: text/html; charset=utf-8', '',
  '<p onclick="x()">hi <img src="cid:img1@x"><img src="https://track.example/p.gif"><script>alert(1)</script></p>',
  '--b', 'Content-Type: image/png', 'Content-ID: <img1@x>', 'Content-Transfer-Encoding: base64', '', 'iVBORw0KGgo=', '--b--', '',
].join('\r\n');

describe('parseMail basics', () => {
  it('reads headers, decodes words, sanitizes HTML and keeps cid images mapped to attachments', async () => {
    const mail = await parseMail(related);
    expect(mail.messageId).toBe('<a1@example.com>');
    expect(mail.references).toEqual(['<r1@x>']);
    expect(mail.from).toEqual({ address: 'zhang@example.com', name: '张三' });
    expect(mail.subject).toBe('你好');
    expect(mail.date?.toISOString()).toBe('2026-12-01T02:00:00.000Z');
    expect(mail.text).toBe('hi');
    expect(mail.html).toBe('<p>hi <img src="cid:img1@x" /><img data-remote-src="https://track.example/p.gif" /></p>');
    expect(mail.attachments).toMatchObject([{ contentId: 'img1@x', inline: true, contentType: 'image/png', size: 8 }]);
    expect(mail.loop.automated).toBe(false);
  });

  it('refuses what is not a mail with a typed error', async () => {
    await expect(parseMail('')).rejects.toBeInstanceOf(MailParseError);
    await expect(parseMail('just some words without a header')).rejects.toMatchObject({ reason: 'not_a_mail' });
  });
});

describe('bad input never crashes parseMail', () => {
  it('malformed MIME: unclosed boundary, unknown charset, broken escapes, missing boundary, bad base64, unreadable date', async () => {
    const { readFileSync } = await import('node:fs');
    const mail = await parseMail(readFileSync(new URL('../../fixtures/email/malformed-mime.eml', import.meta.url)));
    expect(mail.messageId).toBe('<broken-1@example.org>');
    expect(mail.subject).toBe('坏掉的mail ');
    expect(mail.text).toBe('The first part survives ✓ and a broken escape =ZZ stays.');
    expect(mail.date).toBeUndefined();
    expect(mail.warnings).toContain('the Date header cannot be read: not a date');
    expect(mail.attachments.map((a) => a.filename)).toContain('cut.pdf');
  });

  it.each([
    ['headers only, no body', 'From: a@b.example\r\nSubject: only headers'],
    ['binary after the headers', Buffer.concat([Buffer.from('From: a@b.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'), Buffer.from([0, 255, 254, 0, 1, 2, 0xc3, 0x28])])],
    ['cut inside a header block', 'From: a@b.example\r\nContent-Type: multipart/mixed; bound'],
    ['nesting a thousand deep', `From: a@b.example\r\n${Array.from({ length: 1000 }, (_, i) => `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n`).join('')}Content-Type: text/plain\r\n\r\ndeep\r\n`],
    ['an encoded word with a broken charset and base64', 'From: =?x-nope?B?!!!?= <a@b.example>\r\nSubject: =?utf-8?B?5L2g5aW?=\r\n\r\nbody'],
    ['a header without a value and LF line ends', 'From: a@b.example\nTo:\nSubject:\n\nplain body\n'],
  ])('%s', async (_name, raw) => {
    const mail = await parseMail(raw);
    expect(mail.size).toBeGreaterThan(0);
    expect(Array.isArray(mail.references)).toBe(true);
    expect(typeof mail.text).toBe('string');
  });

  it('a 30 MB mail against a 10 MB limit keeps headers and the start of its text with a note', async () => {
    const head = ['From: Video <video@example.org>', 'To: support@shop.example', 'Subject: =?UTF-8?B?6KeG6aKR?=', 'Message-ID: <big-1@example.org>',
      'Content-Type: multipart/mixed; boundary="x"', '', '--x', 'Content-Type: text/plain; charset=utf-8', '', 'Here is the video of the fault.',
      '--x', 'Content-Type: video/mp4; name="fault.mp4"', 'Content-Disposition: attachment; filename="fault.mp4"', 'Content-Transfer-Encoding: base64', '', ''].join('\r\n');
    const line = Buffer.from(`${'QUJD'.repeat(19)}\r\n`);
    const raw = Buffer.concat([Buffer.from(head), Buffer.alloc(30 * 1024 * 1024, line.toString()), Buffer.from('\r\n--x--\r\n')]);
    const mail = await parseMail(raw, { maxBytes: 10 * 1024 * 1024 });
    expect(mail).toMatchObject({ messageId: '<big-1@example.org>', subject: '视频', attachments: [], size: raw.length });
    expect(mail.truncated).toMatchObject({ originalBytes: raw.length, maxBytes: 10 * 1024 * 1024, droppedAttachments: [{ filename: 'fault.mp4', contentType: 'video/mp4' }] });
    expect(mail.text.startsWith('Here is the video of the fault.')).toBe(true);
    expect(mail.text).toContain(`[This mail is ${raw.length} bytes, over the limit of ${10 * 1024 * 1024} bytes`);
    expect(mail.text).toContain('attachments left out: fault.mp4');

    const whole = await parseMail(raw, { maxBytes: 64 * 1024 * 1024 });
    expect(whole.truncated).toBeUndefined();
    expect(whole.attachments[0]!.size).toBe(Buffer.from(Buffer.alloc(30 * 1024 * 1024, line.toString()).toString().replace(/\r\n/g, ''), 'base64').length);
  });
});

describe('mutated fixtures', () => {
  it('a thousand corrupted and cut copies of the corpus each parse or give a MailParseError, nothing else', async () => {
    const { readFileSync, readdirSync } = await import('node:fs');
    const dir = new URL('../../fixtures/email/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.eml')).map((f) => readFileSync(new URL(f, dir)));
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const outcomes = { parsed: 0, refused: 0 };
    for (let i = 0; i < 1000; i++) {
      const mail = Buffer.from(files[i % files.length]!);
      for (let k = 1 + Math.floor(random() * 20); k > 0; k--) {
        const at = Math.floor(random() * mail.length);
        mail[at] = random() < 0.6 ? Math.floor(random() * 256) : [0x2d, 0x0a, 0x0d, 0x3d, 0x3b, 0x22][Math.floor(random() * 6)]!;
      }
      const input = random() < 0.3 ? mail.subarray(0, Math.floor(random() * mail.length)) : mail;
      try {
        const parsed = await parseMail(input);
        expect(Array.isArray(parsed.references) && typeof parsed.text === 'string').toBe(true);
        outcomes.parsed++;
      } catch (error) {
        expect(error).toBeInstanceOf(MailParseError);
        outcomes.refused++;
      }
    }
    expect(outcomes.parsed).toBeGreaterThan(900);
  });
});
