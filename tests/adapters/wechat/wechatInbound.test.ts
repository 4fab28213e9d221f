import { describe, expect, it } from 'vitest';
import { normalizeWechatPush, parseWechatXml, passiveTextReply, scanFlatPush, WechatPayloadError } from '../../../adapters/wechat/wechatInbound.ts';

const head = (type: string, extra: string) =>
  `<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName><FromUserName><![CDATA[oUser_OpenId-1]]></FromUserName>`
  + `<CreateTime>1714036504</CreateTime><MsgType><![CDATA[${type}]]></MsgType>${extra}</xml>`;
const push = (type: string, extra: string) => normalizeWechatPush(parseWechatXml(head(type, extra)));
const messageOf = (type: string, extra: string) => {
  const p = push(type, extra);
  if (p.kind !== 'message') throw new Error(`expected a message, got ${p.kind}`);
  return p.message;
};

describe('WeChat pushes normalized into the one format', () => {
  it('text, keeping the 64-bit MsgId exactly', () => {
    const m = messageOf('text', '<Content><![CDATA[你好 <b>&amp;</b>]]></Content><MsgId>23637352235060880</MsgId>');
    expect(m).toEqual({
      channel: 'wechat', externalId: '23637352235060880', from: { channelId: 'oUser_OpenId-1' }, to: { channelId: 'gh_123456789abc' },
      sentAt: '2024-04-25T09:15:04.000Z', content: { type: 'text', text: '你好 <b>&amp;</b>' },
    });
  });

  it('image, voice (with Recognition as text), video and shortvideo', () => {
    expect(messageOf('image', '<PicUrl><![CDATA[http://mmbiz.qpic.cn/x]]></PicUrl><MediaId><![CDATA[media_1]]></MediaId><MsgId>1</MsgId>').content)
      .toEqual({ type: 'image', attachments: [{ url: 'http://mmbiz.qpic.cn/x', mediaId: 'media_1', contentType: 'image/jpeg' }] });
    expect(messageOf('voice', '<MediaId><![CDATA[v1]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[我要退款]]></Recognition><MsgId>2</MsgId>').content)
      .toEqual({ type: 'audio', text: '我要退款', attachments: [{ mediaId: 'v1', contentType: 'audio/amr' }] });
    expect(messageOf('voice', '<MediaId><![CDATA[v2]]></MediaId><Format><![CDATA[speex]]></Format><MsgId>3</MsgId>').content)
      .toEqual({ type: 'audio', attachments: [{ mediaId: 'v2', contentType: 'audio/speex' }] });
    for (const type of ['video', 'shortvideo']) {
      expect(messageOf(type, '<MediaId><![CDATA[m]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>4</MsgId>').content).toEqual({
        type: 'video', attachments: [{ mediaId: 'm', contentType: 'video/mp4' }, { mediaId: 't', contentType: 'image/jpeg', name: 'thumbnail' }],
      });
    }
  });

  it('location and link as structured content', () => {
    expect(messageOf('location', '<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[广州市天河区]]></Label><MsgId>5</MsgId>').content)
      .toEqual({ type: 'location', location: { lat: 23.134521, lng: 113.358803, label: '广州市天河区' } });
    expect(messageOf('link', '<Title><![CDATA[Order]]></Title><Description><![CDATA[#42]]></Description><Url><![CDATA[https://shop.example/o/42]]></Url><MsgId>6</MsgId>').content)
      .toEqual({ type: 'link', link: { url: 'https://shop.example/o/42', title: 'Order', description: '#42' } });
  });

  it('subscribe (with a QR scene), unsubscribe, SCAN and LOCATION change the contact', () => {
    expect(push('event', '<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_spring]]></EventKey><Ticket><![CDATA[T]]></Ticket>')).toEqual({
      kind: 'contact', openId: 'oUser_OpenId-1', event: 'subscribe', externalId: 'oUser_OpenId-1|1714036504|subscribe',
      sentAt: '2024-04-25T09:15:04.000Z', attributes: { wechatSubscribed: true, wechatQrScene: 'spring' },
    });
    expect(push('event', '<Event><![CDATA[subscribe]]></Event>')).toMatchObject({ kind: 'contact', attributes: { wechatSubscribed: true } });
    expect(push('event', '<Event><![CDATA[unsubscribe]]></Event>')).toMatchObject({ kind: 'contact', event: 'unsubscribe', attributes: { wechatSubscribed: false } });
    expect(push('event', '<Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[summer]]></EventKey><Ticket><![CDATA[T]]></Ticket>'))
      .toMatchObject({ kind: 'contact', event: 'SCAN', attributes: { wechatQrScene: 'summer' } });
    expect(push('event', '<Event><![CDATA[LOCATION]]></Event><Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>'))
      .toMatchObject({ kind: 'contact', attributes: { wechatLocation: { lat: 23.137466, lng: 113.352425, precision: 119.38504 } } });
  });

  it('CLICK and VIEW become event messages whose key routing rules can match; template receipts are ignored', () => {
    expect(messageOf('event', '<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[CONTACT_SUPPORT]]></EventKey>')).toMatchObject({
      externalId: 'oUser_OpenId-1|1714036504|CLICK', content: { type: 'event', event: { name: 'CLICK', key: 'CONTACT_SUPPORT' } },
    });
    expect(messageOf('event', '<Event><![CDATA[VIEW]]></Event><EventKey><![CDATA[https://shop.example]]></EventKey>').content)
      .toEqual({ type: 'event', event: { name: 'VIEW', key: 'https://shop.example' } });
    expect(push('event', '<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>').kind).toBe('ignored');
  });

  it('refuses what is not a push, with the reason', () => {
    const bad: [string, RegExp][] = [
      ['not xml at all', /not a WeChat <xml> push|malformed/],
      ['<xml><ToUserName>a</ToUserName>', /malformed|missing/],
      ['<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>', /DOCTYPE/],
      [head('text', '<Content>hi</Content>'), /MsgId is missing/],
      [head('location', '<Location_X>north</Location_X><Location_Y>1</Location_Y><MsgId>1</MsgId>'), /Location_X is not a number/],
      [head('event', ''), /Event is missing/],
      ['<xml><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>', /ToUserName is missing/],
      [head('text', '').replace('1714036504', 'yesterday'), /CreateTime/],
    ];
    for (const [xml, reason] of bad) expect(() => normalizeWechatPush(parseWechatXml(xml)), xml).toThrow(reason);
    expect(() => parseWechatXml('<<<')).toThrow(WechatPayloadError);
  });

  it('reads the flat push shape with a strict scan and leaves every other shape to the XML parser', () => {
    const pretty = `<xml>\n  <ToUserName><![CDATA[gh_1]]></ToUserName>\n  <FromUserName><![CDATA[oU]]></FromUserName>\n`
      + `  <CreateTime>1348831860</CreateTime>\n  <MsgType><![CDATA[text]]></MsgType>\n  <Content><![CDATA[ a <b> & c ]]></Content>\n`
      + `  <MsgId>1234567890123456</MsgId>\n  <Empty></Empty>\n</xml>\n`;
    const fields = { ToUserName: 'gh_1', FromUserName: 'oU', CreateTime: '1348831860', MsgType: 'text', Content: ' a <b> & c ', MsgId: '1234567890123456', Empty: '' };
    expect(scanFlatPush(pretty)).toEqual(fields);
    expect(parseWechatXml(pretty)).toEqual(fields);
    // Each of these is not the flat shape: the parser reads it (or refuses it) instead.
    const withField = (xml: string) => head('event', xml);
    const notFlat: [string, Record<string, string> | RegExp][] = [
      [withField('<Event><![CDATA[scancode_push]]></Event><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo>'), { Event: 'scancode_push' }],
      [withField('<Event>a &amp; b</Event>'), { Event: 'a & b' }],
      [withField('<!-- note --><Event>CLICK</Event>'), { Event: 'CLICK' }],
      [withField('<Event>CLICK</Event><Event>VIEW</Event>'), {}],
      [withField('<Event>CLICK</Event>') + 'trailing', /malformed XML/],
      [withField('<Event>CLICK</Evnt>'), /malformed XML/],
      [withField('<__proto__>x</__proto__>'), /malformed XML/],
      [withField('<Event><![CDATA[a]]]]><![CDATA[>b]]></Event>'), { Event: 'a]]>b' }],
    ];
    for (const [xml, expected] of notFlat) {
      expect(scanFlatPush(xml), xml).toBeUndefined();
      if (expected instanceof RegExp) expect(() => parseWechatXml(xml), xml).toThrow(expected);
      else expect(parseWechatXml(xml), xml).toMatchObject({ MsgType: 'event', ...expected });
    }
  });

  it('writes passive text replies that survive CDATA terminators', () => {
    const xml = passiveTextReply({ ToUserName: 'gh_1', FromUserName: 'oU' }, 'Welcome ]]> aboard', 1_700_000_000_000);
    expect(parseWechatXml(xml)).toEqual({ ToUserName: 'oU', FromUserName: 'gh_1', CreateTime: '1700000000', MsgType: 'text', Content: 'Welcome ]]> aboard' });
  });
});
