// The fixture corpus: real-world shapes parsed without loss (text, names, subjects, attachments byte-exact).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseMail, type ParsedMail } from '../../../adapters/email/parseMail.ts';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/email/${name}`, import.meta.url));
const parse = (name: string) => parseMail(fixture(name));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const lines = (...l: string[]) => l.join('\n');
const attachment = (mail: ParsedMail, filename: string) => {
  const found = mail.attachments.find((a) => a.filename === filename);
  if (!found) throw new Error(`no attachment ${filename} in ${mail.attachments.map((a) => a.filename).join(', ')}`);
  return found;
};

describe('charsets', () => {
  it('GBK (Foxmail): body, encoded-word subject and names', async () => {
    const mail = await parse('gbk-foxmail-plain.eml');
    expect(mail.subject).toBe('电饭煲无法加热，申请退换');
    expect(mail.from).toEqual({ address: 'lilei@qq.com', name: '李雷' });
    expect(mail.to).toEqual([{ address: 'support@shop.example', name: '客服中心' }]);
    expect(mail.text).toBe(lines('您好：', '', '我上周在贵店购买的电饭煲（订单号 20261128-0042）无法加热，请问如何退换？', '', '谢谢！', '李雷'));
    expect(mail.messageId).toBe('<tencent_5F3A2B1C9D8E7F60@qq.com>');
    expect(mail.date?.toISOString()).toBe('2026-12-01T01:12:00.000Z');
  });

  it('gb2312 as labelled, GBK-only characters inside (read as GBK)', async () => {
    const mail = await parse('gb2312-declared-gbk-content.eml');
    expect(mail.subject).toBe('发票（张堃）');
    expect(mail.from?.name).toBe('王经理');
    expect(mail.text).toBe(lines('王总：', '', '朱镕基路那家门店的张堃说，发票已经寄出。', '', '此致'));
    expect(mail.html).toContain('朱镕基路那家门店的张堃说');
  });

  it('GB18030 four-byte sequences (Extension B, emoji)', async () => {
    const mail = await parse('gb18030.eml');
    expect(mail.subject).toBe('包装要求𠮷😀');
    expect(mail.from?.name).toBe('陈𠮷');
    expect(mail.text).toBe('订单备注：请在包装上写“𠮷野家”字样😀，谢谢。');
  });

  it('Big5 quoted-printable with Q-encoded subject', async () => {
    const mail = await parse('big5.eml');
    expect(mail.subject).toBe('產品保固詢問');
    expect(mail.from).toEqual({ address: 'lin@hinet.net', name: '林志明' });
    expect(mail.text.trim()).toBe(lines('您好，', '', '我想詢問關於產品保固的問題：購買後一年內是否可以免費維修？', '', '林先生 敬上'));
  });

  it('ISO-2022-JP', async () => {
    const mail = await parse('iso-2022-jp.eml');
    expect(mail.subject).toBe('商品が届きません');
    expect(mail.from?.name).toBe('山田太郎');
    expect(mail.text.trim()).toBe(lines('お世話になっております。', '注文した商品がまだ届いていません。', '確認をお願いいたします。', '', '山田太郎'));
  });
});

describe('structure', () => {
  it('multipart/alternative: both bodies, addresses, and HTML with no script, frame, form or remote fetch', async () => {
    const mail = await parse('multipart-alternative.eml');
    expect(mail.subject).toBe('Pedido nº 4711 – entrega atrasada');
    expect(mail.text).toBe(lines('Olá,', '', 'Meu pedido nº 4711 ainda não chegou. Podem verificar?', '', 'Obrigada,', 'Ana'));
    expect(mail.cc).toEqual([{ address: 'pedro@example.com.br', name: 'Souza, Pedro' }]);
    expect(mail.replyTo).toEqual([{ address: 'ana.souza+orders@example.com.br', name: '' }]);
    const html = mail.html!;
    expect(html).toContain('<b>nº 4711</b>');
    expect(html).toContain('href="https://shop.example/orders/4711" rel="noopener noreferrer nofollow"');
    for (const bad of ['<script', 'steal()', 'onclick', '<iframe', '<form', '<input', 'javascript:', '<style', 'url(', ' src="https://']) expect(html).not.toContain(bad);
    expect(html).toContain('data-remote-src="https://tracker.example/open.gif?u=ana"');
    expect(html).toContain('style="color:#333"');
  });

  it('inline cid images stay linked to their attachments, bytes exact', async () => {
    const mail = await parse('inline-image.eml');
    expect(mail.subject).toBe('产品受损照片');
    expect(mail.text).toContain('收到的商品外壳破损，见附图。');
    const png = attachment(mail, 'damage.png');
    expect(png).toMatchObject({ contentType: 'image/png', contentId: 'damage.png@01DA2B3C.4D5E6F70', inline: true, size: 70 });
    expect(sha256(png.content)).toBe('c414cd0e204de974f73753c7e28d7638e7b3691bb8b1a2bab6b25bb7fed7ce77');
    const jpg = mail.attachments.find((a) => a.contentId === 'photo-2')!;
    expect(jpg).toMatchObject({ contentType: 'image/jpeg', inline: true, size: 2054 });
    expect(sha256(jpg.content)).toBe('a26f08e8422feb510861185e67b290432e14bd109811e3982ca07737b5dfc912');
    expect(mail.html).toContain('src="cid:damage.png@01DA2B3C.4D5E6F70"');
    expect(mail.html).toContain('src="cid:photo-2"');
  });

  it('cid links can be resolved to stored URLs', async () => {
    const mail = await parseMail(fixture('inline-image.eml'), { resolveCid: (cid) => (cid === 'photo-2' ? '/media/att_2' : `https://media.shop.example/${encodeURIComponent(cid)}`) });
    expect(mail.html).toContain('src="https://media.shop.example/damage.png%4001DA2B3C.4D5E6F70"');
    expect(mail.html).toContain('src="/media/att_2"');
  });

  it('attachments: names in RFC 2231 and GBK encoded words, bytes exact', async () => {
    const mail = await parse('attachments.eml');
    expect(mail.text).toBe('Please find the invoice and the order sheet attached.');
    expect(mail.attachments.map((a) => a.filename)).toEqual(['invoice.pdf', '订单明细 2026.xlsx', '报价单.zip', 'notes.txt']);
    expect(mail.attachments.every((a) => !a.inline)).toBe(true);
    const expected: [string, string, number, string][] = [
      ['invoice.pdf', 'application/pdf', 5022, '9ce7043b7d261bd15fad30c5ef92feda17c49d7f229cc25f1cdf3e91ab022980'],
      ['订单明细 2026.xlsx', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', 12345, '53d84ae31edac5066ae3d938912e675869ba1675d2b9d20d642c27a6831b8b21'],
      ['报价单.zip', 'application/zip', 4100, '7d7769755564229c963def1ed06280033cae549f586e315932eaed7ff36bc781'],
      ['notes.txt', 'text/plain', 16, 'eeb9f6a95e1a759e9e204e8f5fd3f41b460b08dcc9db7e1a87173664ec5c6cc8'],
    ];
    for (const [name, type, size, digest] of expected) {
      const a = attachment(mail, name);
      expect([a.contentType, a.size, a.content.length, sha256(a.content)]).toEqual([type, size, size, digest]);
    }
    // A text attachment is handed over as its bytes, not re-encoded.
    expect(attachment(mail, 'notes.txt').content).toEqual(Buffer.from([0xb5, 0xda, 0xd2, 0xbb, 0xd0, 0xd0, 0x0d, 0x0a, 0xb5, 0xda, 0xb6, 0xfe, 0xd0, 0xd0, 0x0d, 0x0a]));
  });

  it('a forwarded mail (message/rfc822) is kept whole, and parses on its own', async () => {
    const mail = await parse('forwarded-rfc822.eml');
    expect(mail.subject).toBe('Fwd: 派送失败');
    expect(mail.text).toBe('See the carrier notice below, please resend.');
    const eml = attachment(mail, 'notice.eml');
    expect(eml.contentType).toBe('message/rfc822');
    expect(mail.forwarded).toMatchObject([{ attachmentIndex: 0, subject: '派送失败', messageId: '<notice-77@carrier.example>', text: '您的包裹 SF1234567890 派送失败：地址不详。' }]);
    const inner = await parseMail(eml.content);
    expect(inner).toMatchObject({ subject: '派送失败', messageId: '<notice-77@carrier.example>', from: { address: 'noreply@carrier.example', name: 'Carrier Notices' } });
    expect(inner.text).toBe('您的包裹 SF1234567890 派送失败：地址不详。');
    expect(sha256(attachment(inner, 'waybill.pdf').content)).toBe('7feb5f2a416f70f995169a91001944a5b374bd3d44e31ba67d76aa5f9d12f69e');
  });
});

describe('reply styles: the agent view strips history and signature, the full body stays', () => {
  it('Outlook: From/Sent block and -----Original Message-----', async () => {
    const mail = await parse('outlook-reply.eml');
    expect(mail.replyText).toBe(lines('Thanks, the new delivery date works for me.', '', 'John Miller', 'Purchasing | Contoso'));
    expect(mail.text).toContain('-----Original Message-----');
    expect(mail.text).toContain('Where is my order?');
    expect(mail.inReplyTo).toBe('<gw.msg_abc123@shop.example>');
    expect(mail.references).toEqual(['<CAF=9x+Yq1vY8kZ@mail.example.com.br>', '<gw.msg_abc123@shop.example>']);
    expect(mail.html).not.toContain('<style');
    expect(mail.html).toContain('Thanks, the new delivery date works for me.');
  });

  it('Gmail: wrapped "On … wrote:", > quotes, "-- " signature', async () => {
    const mail = await parse('gmail-reply.eml');
    expect(mail.replyText).toBe(lines('Perfeito, obrigada!', 'Pode ser entregue na portaria.'));
    expect(mail.text).toContain('> > Meu pedido ainda não chegou.');
    expect(mail.references).toEqual(['<CAF=9x+Yq1vY8kZ@mail.example.com.br>', '<gw.msg_def456@shop.example>']);
  });

  it('Foxmail / QQ: the 原始邮件 block', async () => {
    const mail = await parse('foxmail-reply.eml');
    expect(mail.subject).toBe('回复：回复：电饭煲无法加热，申请退换');
    expect(mail.replyText).toBe('好的，我明天在家等快递。');
    expect(mail.text).toContain('您好，新的电饭煲将于明天送达。');
  });

  it('Chinese Gmail: 在 … 写道： and 发自我的iPhone', async () => {
    const mail = await parse('gmail-zh-reply.eml');
    expect(mail.subject).toBe('Re: 退款进度');
    expect(mail.from?.name).toBe('王小明');
    expect(mail.replyText).toBe('收到退款了，谢谢！');
  });

  it('iPhone: Sent from my iPhone and a quoted attribution', async () => {
    const mail = await parse('iphone-reply.eml');
    expect(mail.replyText).toBe('Yes please, go ahead with the exchange.');
  });
});

describe('machine mail', () => {
  it('a Postfix bounce names our outbound message, the recipient, status and diagnostic', async () => {
    const mail = await parse('dsn-postfix-bounce.eml');
    expect(mail.deliveryReport).toMatchObject({
      originalMessageId: '<gw.msg_pqr678@shop.example>', recipient: 'nobody@customer.example', action: 'failed', status: '5.1.1',
      diagnostic: '550 5.1.1 <nobody@customer.example>: Recipient address rejected: User unknown', permanent: true, reportingMta: 'mx.shop.example',
    });
    expect(mail.loop).toMatchObject({ automated: true, fromDaemon: true, nullSender: true, autoSubmitted: true });
    expect(mail.text).toContain('Recipient address rejected');
    expect(attachment(mail, 'forwarded.eml').contentType).toBe('message/rfc822');
  });

  it('a Gmail-style bounce with returned headers and two recipients reports the failed one', async () => {
    const mail = await parse('dsn-rfc822-headers.eml');
    expect(mail.deliveryReport).toMatchObject({ originalMessageId: '<gw.msg_stu901@shop.example>', recipient: 'gone@customer.example', status: '5.1.1', permanent: true });
    expect(mail.deliveryReport!.recipients.map((r) => [r.recipient, r.action, r.status])).toEqual([['slow@customer.example', 'delayed', '4.4.1'], ['gone@customer.example', 'failed', '5.1.1']]);
    expect(mail.loop.fromDaemon).toBe(true);
  });

  it('an out-of-office reply is flagged as automated by every header it carries', async () => {
    const mail = await parse('auto-reply.eml');
    expect(mail.subject).toBe('自动回复: 您的工单');
    expect(mail.loop).toEqual({ autoSubmitted: true, bulkPrecedence: true, autoReplyHeader: true, fromDaemon: false, nullSender: false, mailingList: false, automated: true, noAutoReply: true });
    expect(mail.headers['auto-submitted']).toBe('auto-replied');
    expect(mail.deliveryReport).toBeUndefined();
  });

  it('ordinary mail is not automated', async () => {
    for (const name of ['gbk-foxmail-plain.eml', 'gmail-reply.eml', 'outlook-reply.eml', 'attachments.eml']) {
      expect((await parse(name)).loop.noAutoReply, name).toBe(false);
    }
  });
});
