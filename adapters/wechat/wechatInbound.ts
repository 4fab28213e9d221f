// WeChat Official Account pushes: XML in, one normalized inbound message (or a contact event) out.
// Every message type and event of ../shared/PROTOCOLS.md; the provider's own ids are the dedup keys
// (MsgId for messages, FromUserName + CreateTime + Event for events, which carry no id).
import { XMLParser } from 'fast-xml-parser';
import type { InboundMessage, MessageContent } from '../../src/schema/message.ts';

export class WechatPayloadError extends Error {}

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false, // OpenIDs, MsgIds (64-bit) and coordinates stay strings: no float rounding
  trimValues: false,
  processEntities: true,
  htmlEntities: false,
  jPath: false, // no callbacks read the path: skip building its string for every value
});

/** The fields of a push's <xml> root, as strings. A DOCTYPE (entity expansion) is refused outright. */
export function parseWechatXml(xml: string): Record<string, string> {
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new WechatPayloadError('XML with a DOCTYPE is not accepted');
  return scanFlatPush(xml) ?? parseWithLibrary(xml);
}

// A push is one flat <xml> of <Name>value</Name> fields, each value CDATA or plain text without
// markup or entities. That shape is read by this strict scan, a tenth of the parser's cost on the
// webhook's path; anything else (nesting, entities, comments, a repeated name) goes to the parser.
// (CDATA content never holds `]]>`: a value split across two CDATA sections is the parser's.)
const flatField = /<([A-Za-z][A-Za-z0-9_]*)>(?:<!\[CDATA\[((?:[^\]]|\](?!\]>))*)\]\]>|([^<&]*))<\/\1>\s*/y;

export function scanFlatPush(xml: string): Record<string, string> | undefined {
  const body = xml.trim();
  if (!body.startsWith('<xml>') || !body.endsWith('</xml>')) return undefined;
  const end = body.length - '</xml>'.length;
  const fields: Record<string, string> = {};
  flatField.lastIndex = '<xml>'.length;
  while (/\s/.test(body[flatField.lastIndex] ?? '')) flatField.lastIndex += 1;
  while (flatField.lastIndex < end) {
    const match = flatField.exec(body);
    if (!match || match.index + match[0].length > end) return undefined;
    const name = match[1]!;
    if (Object.hasOwn(fields, name) || name === '__proto__') return undefined;
    fields[name] = match[2] ?? match[3]!;
  }
  return flatField.lastIndex === end ? fields : undefined;
}

function parseWithLibrary(xml: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = parser.parse(xml, true);
  } catch (error) {
    throw new WechatPayloadError(`malformed XML: ${(error as Error).message.split('\n')[0]}`);
  }
  const root = (parsed as { xml?: unknown }).xml;
  if (!root || typeof root !== 'object') throw new WechatPayloadError('the body is not a WeChat <xml> push');
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(root as Record<string, unknown>)) {
    if (typeof value === 'string' || typeof value === 'number') fields[name] = String(value);
  }
  return fields;
}

/** The base64 `Encrypt` field of a safe-mode envelope, read without a full parse (the inner XML gets one). */
export function extractEncrypt(xml: string): string {
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new WechatPayloadError('XML with a DOCTYPE is not accepted');
  const match = /<Encrypt>\s*(?:<!\[CDATA\[([A-Za-z0-9+/=]+)\]\]>|([A-Za-z0-9+/=]+))\s*<\/Encrypt>/.exec(xml);
  if (!match || !/^\s*<xml>/.test(xml)) throw new WechatPayloadError('Encrypt is missing in safe mode');
  return (match[1] ?? match[2])!;
}

/** What a push becomes: a message for a conversation, a change to the contact, or nothing to store. */
export type WechatPush =
  | { kind: 'message'; message: Omit<InboundMessage, 'accountId' | 'inboxId'> }
  | { kind: 'contact'; openId: string; event: string; externalId: string; attributes: Record<string, unknown>; sentAt: string }
  | { kind: 'ignored'; reason: string };

const required = ['ToUserName', 'FromUserName', 'CreateTime', 'MsgType'] as const;

export function normalizeWechatPush(fields: Record<string, string>): WechatPush {
  for (const name of required) if (!fields[name]) throw new WechatPayloadError(`${name} is missing`);
  if (!/^\d{1,12}$/.test(fields.CreateTime!)) throw new WechatPayloadError('CreateTime is not a number of seconds');
  const sentAt = new Date(Number(fields.CreateTime) * 1000).toISOString();

  switch (fields.MsgType) {
    case 'text':
      return messagePush(fields, sentAt, requiredMsgId(fields), { type: 'text', text: fields.Content ?? '' });
    case 'image':
      return messagePush(fields, sentAt, requiredMsgId(fields), { type: 'image', attachments: [{ url: fields.PicUrl, mediaId: fields.MediaId, contentType: 'image/jpeg' }] });
    case 'voice':
      // Speech recognition, when on, is kept as the text, so agents and rules can read it.
      return messagePush(fields, sentAt, requiredMsgId(fields), {
        type: 'audio', ...(fields.Recognition ? { text: fields.Recognition } : {}),
        attachments: [{ mediaId: fields.MediaId, contentType: `audio/${(fields.Format ?? 'amr').toLowerCase()}` }],
      });
    case 'video':
    case 'shortvideo':
      return messagePush(fields, sentAt, requiredMsgId(fields), {
        type: 'video', attachments: [
          { mediaId: fields.MediaId, contentType: 'video/mp4' },
          ...(fields.ThumbMediaId ? [{ mediaId: fields.ThumbMediaId, contentType: 'image/jpeg', name: 'thumbnail' }] : []),
        ],
      });
    case 'location':
      return messagePush(fields, sentAt, requiredMsgId(fields), {
        type: 'location', location: { lat: coordinate(fields.Location_X, 'Location_X'), lng: coordinate(fields.Location_Y, 'Location_Y'), ...(fields.Label ? { label: fields.Label } : {}) },
      });
    case 'link':
      if (!fields.Url) throw new WechatPayloadError('Url is missing on a link message');
      return messagePush(fields, sentAt, requiredMsgId(fields), { type: 'link', link: { url: fields.Url, ...(fields.Title ? { title: fields.Title } : {}), ...(fields.Description ? { description: fields.Description } : {}) } });
    case 'event':
      return normalizeEvent(fields, sentAt);
    default:
      return { kind: 'ignored', reason: `MsgType ${fields.MsgType} is not one the gateway handles` };
  }
}

function messagePush(fields: Record<string, string>, sentAt: string, externalId: string, content: MessageContent): WechatPush {
  return {
    kind: 'message',
    message: { channel: 'wechat', externalId, from: { channelId: fields.FromUserName! }, to: { channelId: fields.ToUserName! }, sentAt, content },
  };
}

function requiredMsgId(fields: Record<string, string>): string {
  const msgId = fields.MsgId ?? fields.MsgID;
  if (!msgId) throw new WechatPayloadError(`MsgId is missing on a ${fields.MsgType} message`);
  return msgId;
}

function normalizeEvent(fields: Record<string, string>, sentAt: string): WechatPush {
  const event = fields.Event;
  if (!event) throw new WechatPayloadError('Event is missing on an event push');
  // Events carry no id: the user and the second identify one (WeChat's own dedup advice).
  const externalId = `${fields.FromUserName}|${fields.CreateTime}|${event}`;
  const key = fields.EventKey;
  switch (event) {
    case 'subscribe':
      return {
        kind: 'contact', openId: fields.FromUserName!, event, externalId, sentAt,
        attributes: { wechatSubscribed: true, ...(key?.startsWith('qrscene_') ? { wechatQrScene: key.slice('qrscene_'.length) } : {}) },
      };
    case 'unsubscribe':
      return { kind: 'contact', openId: fields.FromUserName!, event, externalId, sentAt, attributes: { wechatSubscribed: false } };
    case 'SCAN':
      return { kind: 'contact', openId: fields.FromUserName!, event, externalId, sentAt, attributes: { wechatSubscribed: true, ...(key ? { wechatQrScene: key } : {}) } };
    case 'LOCATION':
      return {
        kind: 'contact', openId: fields.FromUserName!, event, externalId, sentAt,
        attributes: { wechatLocation: { lat: coordinate(fields.Latitude, 'Latitude'), lng: coordinate(fields.Longitude, 'Longitude'), precision: Number(fields.Precision ?? 0) } },
      };
    case 'CLICK':
    case 'VIEW':
      // A menu click is the customer asking for something: a message whose event key routing rules can match.
      return messagePush(fields, sentAt, externalId, { type: 'event', event: { name: event, ...(key ? { key } : {}) } });
    case 'TEMPLATESENDJOBFINISH':
      return { kind: 'ignored', reason: 'template message receipts are not tracked' };
    default:
      return messagePush(fields, sentAt, externalId, { type: 'event', event: { name: event, ...(key ? { key } : {}) } });
  }
}

function coordinate(value: string | undefined, name: string): number {
  const n = Number(value);
  if (value === undefined || value.trim() === '' || !Number.isFinite(n)) throw new WechatPayloadError(`${name} is not a number`);
  return n;
}

/** A passive text reply, in the HTTP answer to a push (encrypt it in safe mode). */
export function passiveTextReply(push: { ToUserName: string; FromUserName: string }, text: string, now = Date.now()): string {
  const cdata = (s: string) => `<![CDATA[${s.replaceAll(']]>', ']]]]><![CDATA[>')}]]>`;
  return `<xml><ToUserName>${cdata(push.FromUserName)}</ToUserName><FromUserName>${cdata(push.ToUserName)}</FromUserName>`
    + `<CreateTime>${Math.floor(now / 1000)}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>${cdata(text)}</Content></xml>`;
}
