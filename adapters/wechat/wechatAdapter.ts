// WeChat Official Account replies through the customer-service API (客服消息): one normalized message
// becomes one `custom/send`, after uploading an attachment as temporary media when it has a URL but
// no media_id. WeChat's errcodes become either a permanent failure the agent sees or a retry.
import { inboxTypes } from '../../src/inboxes/inboxTypes.ts';
import type { InboxRecord } from '../../src/inboxes/inboxDirectory.ts';
import type { MessageContent } from '../../src/schema/message.ts';
import { PermanentSendError, SendOutcomeUnknownError, type ChannelAdapter, type SendRequest, type SendResult } from '../channelAdapter.ts';
import { callWechat, WechatApiError, wechatApiBase, wechatHttpTimeoutMs, WechatNoAnswerError } from './wechatApi.ts';

export type WechatCredentials = { appId: string; appSecret: string; token: string; encodingAESKey?: string };
type Attachment = NonNullable<MessageContent['attachments']>[number];

/** Where access_tokens come from: the core's shared cache (the adapter stores nothing). */
export interface WechatTokenSource {
  getToken(inbox: InboxRecord, credentials: WechatCredentials): Promise<string>;
  /** WeChat refused this token: forget it, unless it has already been replaced. */
  invalidate(inbox: InboxRecord, credentials: WechatCredentials, badToken: string): Promise<void>;
}

export interface LoadedAttachment { bytes: Uint8Array; contentType: string }

/** The bytes of an agent's attachment by its URL, at most maxBytes (a PermanentSendError when refused). */
export interface AttachmentSource {
  load(attachment: Attachment, maxBytes: number): Promise<LoadedAttachment>;
}

type MediaType = 'image' | 'voice' | 'video' | 'thumb';

/** WeChat's documented limits for temporary media uploads. */
const uploadLimits: Record<MediaType, { maxBytes: number; extensions: Record<string, string> }> = {
  image: { maxBytes: 10 * 1024 * 1024, extensions: { 'image/jpeg': 'jpg', 'image/png': 'png', 'image/gif': 'gif', 'image/bmp': 'bmp' } },
  voice: { maxBytes: 2 * 1024 * 1024, extensions: { 'audio/amr': 'amr', 'audio/mpeg': 'mp3', 'audio/mp3': 'mp3' } },
  video: { maxBytes: 10 * 1024 * 1024, extensions: { 'video/mp4': 'mp4' } },
  thumb: { maxBytes: 64 * 1024, extensions: { 'image/jpeg': 'jpg' } },
};

/** A token WeChat no longer accepts (invalid, expired, not the latest): refresh once and retry. */
const tokenRejected = new Set([40001, 42001, 40014]);

type MediaRef = { mediaId: string } | { upload: Attachment; type: MediaType };

/** What one reply becomes, before media ids are known. */
type Outgoing =
  | { msgtype: 'text'; text: { content: string } }
  | { msgtype: 'news'; news: { articles: { title: string; description?: string; url: string; picurl?: string }[] } }
  | { msgtype: 'image' | 'voice'; media: MediaRef }
  | { msgtype: 'video'; media: MediaRef; thumb?: MediaRef; title?: string; description?: string };

export class WechatAdapter implements ChannelAdapter {
  readonly type = 'wechat';

  private readonly timeoutMs: number;

  /** `timeoutMs`: how long each call to WeChat may take before it counts as unanswered. */
  constructor(private readonly tokens: WechatTokenSource, private readonly attachments?: AttachmentSource, options: { timeoutMs?: number } = {}) {
    this.timeoutMs = options.timeoutMs ?? wechatHttpTimeoutMs;
  }

  async send(request: SendRequest): Promise<SendResult> {
    const parsed = inboxTypes.wechat.credentials.safeParse(request.credentials);
    if (!parsed.success) throw new PermanentSendError('invalid_credentials', 'The inbox credentials are incomplete: appId and appSecret are required to send.');
    const credentials: WechatCredentials = parsed.data;
    const apiBase = wechatApiBase(request.inbox.settings);
    const outgoing = outgoingMessage(request.message.content);
    // Loaded once, before WeChat is asked anything: a refused or missing file fails without a token.
    const loaded = new Map<Attachment, LoadedAttachment>();
    for (const ref of mediaRefs(outgoing)) {
      if ('upload' in ref) loaded.set(ref.upload, await this.load(ref.upload, ref.type));
    }
    try {
      await this.withToken(request.inbox, credentials, async (token) => {
        const mediaId = (ref: MediaRef) => ('mediaId' in ref ? ref.mediaId : upload(apiBase, token, ref, loaded.get(ref.upload)!, this.timeoutMs));
        const body = await customMessageBody(outgoing, mediaId);
        // The call that delivers: once it may have reached WeChat unanswered, sending again could deliver twice.
        const deliver = async (): Promise<SendResult> => {
          try {
            await callWechat(`${apiBase}/cgi-bin/message/custom/send?access_token=${encodeURIComponent(token)}`, {
              method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ touser: request.to, ...body }),
            }, 'custom/send', this.timeoutMs);
          } catch (error) {
            throw error instanceof WechatNoAnswerError ? new SendOutcomeUnknownError(error.message) : error;
          }
          return { status: 'sent' };
        };
        await (request.deliverOnce ? request.deliverOnce(deliver, this.timeoutMs) : deliver());
      });
    } catch (error) {
      throw error instanceof WechatApiError ? sendError(error) : error;
    }
    // custom/send returns no message id.
    return { status: 'sent' };
  }

  private async load(attachment: Attachment, type: MediaType): Promise<LoadedAttachment> {
    if (!this.attachments) {
      throw new PermanentSendError('unsupported_content', 'This attachment has no WeChat media_id, and this gateway cannot fetch attachment URLs.');
    }
    return this.attachments.load(attachment, uploadLimits[type].maxBytes);
  }

  /** Runs the call with the shared token; a token WeChat rejects is dropped, and the call made once more with a fresh one. */
  private async withToken(inbox: InboxRecord, credentials: WechatCredentials, call: (token: string) => Promise<void>): Promise<void> {
    const token = await this.tokens.getToken(inbox, credentials);
    try {
      return await call(token);
    } catch (error) {
      if (!(error instanceof WechatApiError && tokenRejected.has(error.errcode))) throw error;
      await this.tokens.invalidate(inbox, credentials, token);
    }
    const fresh = await this.tokens.getToken(inbox, credentials);
    try {
      return await call(fresh);
    } catch (error) {
      if (!(error instanceof WechatApiError && tokenRejected.has(error.errcode))) throw error;
      throw new Error(`WeChat refused a freshly fetched access_token as well (${error.errcode}); the send will be retried`);
    }
  }
}

/** The WeChat message for a normalized content, or a PermanentSendError saying why there is none. */
function outgoingMessage(content: MessageContent): Outgoing {
  const unsupported = (why: string) => new PermanentSendError('unsupported_content', why);
  const text = content.text?.trim() ? content.text : undefined;
  const attachments = content.attachments ?? [];
  const media = (attachment: Attachment | undefined, type: MediaType): MediaRef => {
    if (attachment?.mediaId) return { mediaId: attachment.mediaId };
    if (attachment?.url) return { upload: attachment, type };
    throw unsupported(`A WeChat ${type} reply needs an attachment with a mediaId or a URL.`);
  };
  switch (content.type) {
    case 'text':
      if (!text) throw unsupported('A text reply needs text.');
      return { msgtype: 'text', text: { content: text } };
    case 'link': {
      if (!content.link?.url) throw unsupported('A link reply needs link.url.');
      const picture = attachments.find((a) => a.url && a.contentType.startsWith('image/'));
      const description = content.link.description ?? text;
      return {
        msgtype: 'news', news: {
          articles: [{
            title: content.link.title ?? content.link.url, url: content.link.url,
            ...(description ? { description } : {}), ...(picture ? { picurl: picture.url } : {}),
          }],
        },
      };
    }
    case 'image':
    case 'audio': {
      const msgtype = content.type === 'image' ? 'image' : 'voice';
      // WeChat image and voice messages have no caption: dropping the agent's text silently would be worse.
      if (text) throw unsupported(`WeChat ${msgtype} messages carry no text: send the text as a separate reply.`);
      if (attachments.length > 1) throw unsupported(`A WeChat ${msgtype} message carries one attachment.`);
      return { msgtype, media: media(attachments[0], msgtype) };
    }
    case 'video': {
      // Inbound video keeps its thumbnail as a second attachment named `thumbnail`; replies follow suit.
      const thumbnail = attachments.find((a) => a.name === 'thumbnail');
      const videos = attachments.filter((a) => a !== thumbnail);
      if (videos.length > 1) throw unsupported('A WeChat video message carries one video.');
      const title = content.subject ?? (videos[0]?.name || undefined);
      return {
        msgtype: 'video', media: media(videos[0], 'video'),
        ...(thumbnail ? { thumb: media(thumbnail, 'thumb') } : {}), ...(title ? { title } : {}), ...(text ? { description: text } : {}),
      };
    }
    default:
      throw unsupported(`WeChat customer-service messages cannot carry ${content.type} content (text, link, image, audio and video can be sent).`);
  }
}

function mediaRefs(outgoing: Outgoing): MediaRef[] {
  if (outgoing.msgtype === 'video') return outgoing.thumb ? [outgoing.media, outgoing.thumb] : [outgoing.media];
  if (outgoing.msgtype === 'image' || outgoing.msgtype === 'voice') return [outgoing.media];
  return [];
}

/** The custom/send body (without touser) once every media reference has a media_id. */
async function customMessageBody(outgoing: Outgoing, mediaId: (ref: MediaRef) => string | Promise<string>): Promise<Record<string, unknown>> {
  switch (outgoing.msgtype) {
    case 'text':
    case 'news':
      return outgoing;
    case 'image':
    case 'voice':
      return { msgtype: outgoing.msgtype, [outgoing.msgtype]: { media_id: await mediaId(outgoing.media) } };
    case 'video':
      return {
        msgtype: 'video', video: {
          media_id: await mediaId(outgoing.media),
          ...(outgoing.thumb ? { thumb_media_id: await mediaId(outgoing.thumb) } : {}),
          ...(outgoing.title ? { title: outgoing.title } : {}), ...(outgoing.description ? { description: outgoing.description } : {}),
        },
      };
  }
}

/** Uploads the bytes as temporary media (`media/upload`, multipart) and returns the media_id. */
async function upload(apiBase: string, token: string, ref: { upload: Attachment; type: MediaType }, file: LoadedAttachment, timeoutMs: number): Promise<string> {
  const limits = uploadLimits[ref.type];
  const contentType = (file.contentType || ref.upload.contentType).split(';')[0]!.trim().toLowerCase();
  // WeChat judges the format by the file name's extension.
  const extension = limits.extensions[contentType];
  if (!extension) {
    throw new PermanentSendError('unsupported_content',
      `WeChat does not take ${contentType} as ${ref.type} media (it takes ${[...new Set(Object.values(limits.extensions))].join(', ')}).`);
  }
  if (file.bytes.byteLength > limits.maxBytes) {
    throw new PermanentSendError('attachment_too_large', `WeChat ${ref.type} media is at most ${limits.maxBytes / 1024} KB.`);
  }
  const form = new FormData();
  form.append('media', new Blob([file.bytes as Uint8Array<ArrayBuffer>], { type: contentType }), `${ref.type}.${extension}`);
  const answer = await callWechat(`${apiBase}/cgi-bin/media/upload?access_token=${encodeURIComponent(token)}&type=${ref.type}`,
    { method: 'POST', body: form }, 'media/upload', timeoutMs);
  const id = ref.type === 'thumb' ? answer.thumb_media_id ?? answer.media_id : answer.media_id;
  if (typeof id !== 'string' || !id) throw new Error('media/upload: WeChat answered without a media_id');
  return id;
}

/** WeChat's refusal as the outbound worker should treat it: permanent (with the reason) or retried. */
function sendError(error: WechatApiError): Error {
  switch (error.errcode) {
    case 45015:
      return new PermanentSendError('45015', 'The customer last wrote more than 48 hours ago: WeChat only allows replies within 48 hours (45015).');
    case 40003:
      return new PermanentSendError('40003', 'WeChat does not know this OpenID for the official account (40003): the contact cannot be reached from this inbox.');
    case 40007:
      // PROTOCOLS.md: 40007 is an invalid media_id; the same id never becomes valid.
      return new PermanentSendError('40007', 'WeChat does not know this media_id (40007): temporary media may have expired; attach the file again.');
    case 45047:
      return new Error('WeChat refused: too many customer-service messages to this user since they last wrote (45047); the send will be retried');
    case 45009:
      return new Error("WeChat refused: the official account's daily API quota is used up (45009); the send will be retried");
    default:
      return error;
  }
}
