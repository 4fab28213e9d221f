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
