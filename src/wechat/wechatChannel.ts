// The WeChat Official Account server URL: the URL check (GET) and message pushes (POST) in plain,
// compatible and safe mode. A push is answered `success` (or a passive reply) only once its message
// is durably queued, and never after WeChat's 5 s deadline: a late answer shows the user an error, no
// answer makes WeChat retry, and the retry is deduplicated by the provider's id.
import { parse as parseQueryString } from 'node:querystring';
import { decryptWechatMessage, encryptedReplyXml, verifyWechatSignature, WechatCryptoError } from '../../adapters/wechat/wechatCrypto.ts';
import { extractEncrypt, normalizeWechatPush, parseWechatXml, passiveTextReply, WechatPayloadError } from '../../adapters/wechat/wechatInbound.ts';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import type { PushAnswer, PushInput } from '../http/pushLane.ts';
import { badRequest, HttpError, notFound } from '../http/errors.ts';
import type { InboxDirectory, InboxRecord } from '../inboxes/inboxDirectory.ts';
import { InboundBusyError, type InboundAcceptor } from '../ingest/acceptInbound.ts';
import type { Logger } from '../logger.ts';

interface WechatCredentials { appId: string; appSecret: string; token: string; encodingAESKey?: string }

/** WeChat gives up after 5 s; what is not queued by then is left for its retry. */
export const wechatAnswerDeadlineMs = 4500;
const inboxCacheMs = 2000;
/** A real push is a few KiB of XML; anything far larger is refused before parsing. */
export const wechatMaxPushBytes = 64 * 1024;

export class WechatChannel {
  constructor(private readonly deps: { inboxes: InboxDirectory; acceptor: InboundAcceptor; log: Logger; deadlineMs?: number }) {}

  registerRoutes(api: ApiRegistry): void {
    api.add({
      method: 'get', path: '/wechat/:inboxId', tag: 'Providers', auth: 'provider', produces: 'text/plain: the echostr',
      summary: 'WeChat Official Account server URL check: answers echostr when the signature matches the inbox token',
      handler: async (ctx, { params }) => {
        const { credentials } = await this.inbox(params.inboxId!);
        const q = signedQuery(ctx.querystring);
        if (!verifyWechatSignature(q.signature, credentials.token, q.timestamp ?? '', q.nonce ?? '')) throw signatureError();
        if (!q.echostr) throw badRequest('echostr is missing');
        ctx.type = 'text/plain';
        return q.echostr;
      },
    });
    api.add({
      method: 'post', path: '/wechat/:inboxId', tag: 'Providers', auth: 'provider', produces: 'text/plain `success`, or an XML passive reply',
      summary: 'WeChat Official Account message push (plain, compatible and safe mode)',
      bodyLimitBytes: wechatMaxPushBytes,
      push: (input) => this.receive(input),
    });
  }

  // Pushes come in bursts for one inbox: its record and decrypted credentials are kept for 2 s, so a
  // change (new token, disabled inbox) takes effect on every process within that.
  private readonly inboxCache = new Map<string, { at: number; inbox: InboxRecord | undefined; credentials?: WechatCredentials }>();

  private async inbox(inboxId: string): Promise<{ inbox: InboxRecord; credentials: WechatCredentials }> {
    const now = Date.now();
    let cached = this.inboxCache.get(inboxId);
    if (!cached || now - cached.at > inboxCacheMs) {
      const inbox = await this.deps.inboxes.records.getAnyAccount(inboxId);
      const usable = inbox?.type === 'wechat' ? inbox : undefined;
      cached = { at: now, inbox: usable, ...(usable ? { credentials: this.deps.inboxes.credentials(usable) as unknown as WechatCredentials } : {}) };
      if (this.inboxCache.size > 10_000) this.inboxCache.clear();
      this.inboxCache.set(inboxId, cached);
    }
    if (!cached.inbox) throw notFound('inbox');
    if (!cached.inbox.enabled) throw new HttpError(403, 'inbox_disabled', 'this inbox is disabled');
    return { inbox: cached.inbox, credentials: cached.credentials! };
  }

  private async receive(input: PushInput): Promise<PushAnswer> {
    const { inbox, credentials } = await this.inbox(input.params.inboxId!);
    const q = signedQuery(input.querystring);
    const timestamp = q.timestamp ?? '';
    const nonce = q.nonce ?? '';
    const safeMode = q.encrypt_type === 'aes';
    // In safe mode msg_signature (which also covers the body) is checked below, instead of `signature`.
    if (!safeMode && !verifyWechatSignature(q.signature, credentials.token, timestamp, nonce)) throw signatureError();
    const body = input.body.toString('utf8');
    if (!body.trim()) throw badRequest('the body is empty');

    let fields: Record<string, string>;
    try {
      if (safeMode) {
        if (!credentials.encodingAESKey) throw badRequest('safe mode needs the inbox credential encodingAESKey');
        const encrypted = extractEncrypt(body);
        if (!verifyWechatSignature(q.msg_signature, credentials.token, timestamp, nonce, encrypted)) throw signatureError();
        fields = parseWechatXml(decryptWechatMessage(credentials.encodingAESKey, credentials.appId, encrypted));
      } else {
        fields = parseWechatXml(body);
      }
    } catch (error) {
      if (error instanceof WechatPayloadError) throw badRequest(error.message);
      if (error instanceof WechatCryptoError) throw badRequest(`Encrypt cannot be decrypted: ${error.message}`);
      throw error;
    }

    let push;
    try {
      push = normalizeWechatPush(fields);
    } catch (error) {
      if (error instanceof WechatPayloadError) throw badRequest(error.message);
      throw error;
    }
    if (push.kind === 'ignored') return success;

    const queued = push.kind === 'message'
      ? this.deps.acceptor.accept({ ...push.message, accountId: inbox.accountId, inboxId: inbox.id })
      : this.deps.acceptor.acceptContactEvent({
        accountId: inbox.accountId, inboxId: inbox.id, channel: 'wechat', channelId: push.openId, externalId: push.externalId,
        event: push.event, attributes: push.attributes, sentAt: push.sentAt,
      });
    const inTime = await withinDeadline(queued, this.deps.deadlineMs ?? wechatAnswerDeadlineMs).catch((error: unknown) => {
      if (error instanceof InboundBusyError) return 'busy' as const;
      throw error;
    });
    if (inTime !== true) {
      // Silence, not a late answer or an error body (which shows the follower an error): WeChat retries, and the
      // retry finds the message queued (late) or a line with room again (busy).
      this.deps.log.warn({ inboxId: inbox.id, reason: inTime === 'busy' ? 'busy' : 'deadline' }, 'wechat push not queued; left for the retry');
      return { hangUp: true };
    }

    const welcome = push.kind === 'contact' && push.event === 'subscribe' ? (inbox.settings as { welcomeText?: string }).welcomeText : undefined;
    if (!welcome) return success;
    const reply = passiveTextReply({ ToUserName: fields.ToUserName!, FromUserName: fields.FromUserName! }, welcome);
    if (!safeMode) return { type: 'application/xml', body: reply };
    return {
      type: 'application/xml',
      body: encryptedReplyXml({ token: credentials.token, encodingAESKey: credentials.encodingAESKey!, appId: credentials.appId, replyXml: reply, timestamp, nonce }),
    };
  }
}

const success: PushAnswer = { type: 'text/plain', body: 'success' };

/** The query WeChat signs (signature, timestamp, nonce, …); a repeated name counts as a wrong value. */
function signedQuery(querystring: string): Record<string, string | undefined> {
  // node:querystring is several times cheaper than koa's URLSearchParams-based ctx.query on this path.
  return parseQueryString(querystring) as Record<string, string | undefined>;
}

function signatureError(): HttpError {
  return new HttpError(401, 'invalid_signature', 'the WeChat signature does not match the inbox token');
}

/** True when the work finished in time; its failure is rethrown (a 5xx: WeChat retries). */
async function withinDeadline(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([work.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
    work.catch(() => undefined);
  }
}
