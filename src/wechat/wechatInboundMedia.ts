// A customer's image, voice note or video, fetched from WeChat (`media/get`) after the push was
// answered and the message stored: one `media` job per media id on the inbound queue. The file goes
// to the MediaStore and the attachment's url becomes the gateway's own, so agents see it. WeChat
// keeps temporary media for 3 days, so a few retries suffice; an unknown id (40007) ends the job.
import type { Job, JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { PermanentSendError } from '../../adapters/channelAdapter.ts';
import type { AttachmentSource, WechatTokenSource } from '../../adapters/wechat/wechatAdapter.ts';
import { WechatApiError, wechatApiBase } from '../../adapters/wechat/wechatApi.ts';
import { downloadWechatMedia, WechatMediaRefusedError, type WechatMediaDownload } from '../../adapters/wechat/wechatMedia.ts';
import type { Agent } from 'undici';
import { createCheckedDispatcher } from '../events/checkedDispatcher.ts';
import { checkWebhookTarget, WebhookTargetError } from '../events/webhookTarget.ts';
import { keyDigest } from '../ids.ts';
import type { InboxDirectory, InboxRecord } from '../inboxes/inboxDirectory.ts';
import { inboxTypes } from '../inboxes/inboxTypes.ts';
import type { Logger } from '../logger.ts';
import { maxMediaBytes, mediaKeyFor, mediaPath, mediaStoreKey, MediaTooLargeError, type MediaStore } from '../media/mediaStore.ts';
import type { Keyspace } from '../redis/keys.ts';
import type { InboundMessage, NormalizedMessage } from '../schema/message.ts';

export const mediaJobName = 'media';

export const mediaJobSchema = z.object({
  accountId: z.string(), inboxId: z.string(), messageId: z.string(), mediaId: z.string().min(1).max(512),
});
export type MediaJob = z.infer<typeof mediaJobSchema>;

// Behind new messages (jobs without a priority go first): a photo may wait, a message may not.
const mediaJobOptions: JobsOptions = {
  attempts: 6, backoff: { type: 'exponential', delay: 2000 }, priority: 10,
  removeOnComplete: true, removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
};

/** Same token-refresh rule as replies: a rejected token is dropped and the call made once more. */
const tokenRejected = new Set([40001, 42001, 40014]);

// Compare-and-set of the message body: another attachment's job may have rewritten it meanwhile.
const replaceBody = `local current = redis.call('HGET', KEYS[1], 'body')
if not current then return -1 end
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'body', ARGV[2])
return 1`;

export type MediaJobResult = 'stored' | 'already-stored' | 'missing' | 'refused' | 'media-invalid';

export class WechatInboundMedia {
  private readonly maxBytes: number;
  // The apiBaseUrl is checked before the download, and each connection again as it opens (DNS rebinding).
  private readonly dispatcher: Agent;

  constructor(private readonly deps: {
    redis: Redis; keys: Keyspace; queue: Queue; inboxes: InboxDirectory; tokens: WechatTokenSource; store: MediaStore;
    /** Downloads the video_url WeChat answers for video media (guarded like an agent's attachment URL). */
    videoDownloads: AttachmentSource;
    log: Logger;
    /** Whether the inbox's apiBaseUrl may be a loopback or private address (GATEWAY_PROVIDER_PRIVATE_TARGETS). */
    allowPrivate: boolean;
    maxBytes?: number;
  }) {
    this.maxBytes = deps.maxBytes ?? maxMediaBytes;
    this.dispatcher = createCheckedDispatcher({ allowPrivate: deps.allowPrivate });
  }

  /** Closes the connections kept to WeChat. */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** Queues one job per media id of a stored WeChat message; repeating it for the same message adds nothing. */
  async enqueueFor(messageId: string, message: InboundMessage): Promise<void> {
    if (message.channel !== 'wechat') return;
    const mediaIds = new Set((message.content.attachments ?? []).flatMap((a) => (a.mediaId ? [a.mediaId] : [])));
    for (const mediaId of mediaIds) {
      const job: MediaJob = { accountId: message.accountId, inboxId: message.inboxId, messageId, mediaId };
      await this.deps.queue.add(mediaJobName, job, { ...mediaJobOptions, jobId: `media_${keyDigest(`${messageId}\n${mediaId}`)}` });
    }
  }

  async process(job: Job): Promise<MediaJobResult> {
    const data = mediaJobSchema.parse(job.data);
    const { accountId, mediaId } = data;
    const mediaKey = mediaKeyFor(accountId, mediaId);
    const url = mediaPath(accountId, mediaKey);
    const message = await this.message(data.messageId);
    if (!message || message.accountId !== accountId) return 'missing';
    const attachments = message.content.attachments ?? [];
    if (!attachments.some((a) => a.mediaId === mediaId)) return 'missing';
    // A WeChat retry of the push after this job finished queues it again: nothing left to do.
    if (attachments.every((a) => a.mediaId !== mediaId || a.url === url)) return 'already-stored';
    const inbox = await this.deps.inboxes.records.get(accountId, data.inboxId);
    if (!inbox || inbox.type !== 'wechat') return 'missing';

    const context = { accountId, inboxId: inbox.id, messageId: message.id };
    let file: { bytes: Buffer; contentType: string };
    try {
      file = await this.download(inbox, mediaId, attachments.find((a) => a.mediaId === mediaId)!.contentType);
    } catch (error) {
      if (error instanceof WechatApiError && error.errcode === 40007) {
        // An unknown or expired media id never becomes valid: the attachment keeps its mediaId only.
        this.deps.log.warn({ ...context, err: error.message }, 'wechat media not fetched: WeChat does not know the media id');
        return 'media-invalid';
      }
      if (error instanceof WechatMediaRefusedError || error instanceof PermanentSendError || error instanceof MediaTooLargeError) {
        this.deps.log.warn({ ...context, err: error.message }, 'wechat media not fetched');
        return 'refused';
      }
      throw error;
    }
    const stored = await this.deps.store.put(mediaStoreKey(accountId, mediaKey), file.bytes, file.contentType);
    return (await this.recordUrl(message.id, mediaId, url, stored.size)) ? 'stored' : 'missing';
  }

  private async message(messageId: string): Promise<NormalizedMessage | undefined> {
    const body = await this.deps.redis.hget(this.deps.keys.message(messageId), 'body');
    return body ? (JSON.parse(body) as NormalizedMessage) : undefined;
  }

  private async download(inbox: InboxRecord, mediaId: string, declaredType: string): Promise<{ bytes: Buffer; contentType: string }> {
    const parsed = inboxTypes.wechat.credentials.safeParse(this.deps.inboxes.credentials(inbox));
    if (!parsed.success) throw new WechatMediaRefusedError('the inbox credentials lack appId and appSecret');
    const credentials = parsed.data;
    const apiBase = wechatApiBase(inbox.settings);
    try {
      // The base URL is the tenant's: the file is served back to them, so it must not read the gateway's own network.
      await checkWebhookTarget(apiBase, this.deps.allowPrivate);
    } catch (error) {
      if (error instanceof WebhookTargetError) throw new WechatMediaRefusedError(`the inbox apiBaseUrl is refused: ${error.message}`);
      throw error;
    }
    const fetchWith = (token: string) => downloadWechatMedia(apiBase, token, mediaId, this.maxBytes, undefined, this.dispatcher);
    const token = await this.deps.tokens.getToken(inbox, credentials);
    let answer: WechatMediaDownload;
    try {
      answer = await fetchWith(token);
    } catch (error) {
      if (!(error instanceof WechatApiError && tokenRejected.has(error.errcode))) throw error;
      await this.deps.tokens.invalidate(inbox, credentials, token);
      answer = await fetchWith(await this.deps.tokens.getToken(inbox, credentials));
    }
    if (answer.kind === 'videoUrl') {
      const loaded = await this.deps.videoDownloads.load({ url: answer.url, contentType: declaredType || 'video/mp4' }, this.maxBytes);
      return { bytes: Buffer.from(loaded.bytes), contentType: loaded.contentType };
    }
    // WeChat's own label wins unless it says nothing useful.
    const generic = !answer.contentType || answer.contentType === 'application/octet-stream' || answer.contentType === 'text/plain';
    return { bytes: answer.bytes, contentType: generic ? declaredType : answer.contentType };
  }

  /** Sets the url (and size) on every attachment with this media id; false when the message is gone. */
  private async recordUrl(messageId: string, mediaId: string, url: string, size: number): Promise<boolean> {
    const key = this.deps.keys.message(messageId);
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await this.deps.redis.hget(key, 'body');
      if (!current) return false;
      const message = JSON.parse(current) as NormalizedMessage;
      for (const attachment of message.content.attachments ?? []) {
        if (attachment.mediaId === mediaId) Object.assign(attachment, { url, size });
      }
      const replaced = (await this.deps.redis.eval(replaceBody, 1, key, current, JSON.stringify(message))) as number;
      if (replaced !== 0) return replaced === 1;
    }
    throw new Error(`the message ${messageId} kept changing while its media url was recorded; the job will be retried`);
  }
}
