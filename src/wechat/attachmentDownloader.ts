// An agent's attachment fetched by its URL, for channels that need the file itself (WeChat uploads
// it as temporary media). The URL is the tenant's, so it must not reach the gateway's own network
// (Redis on loopback, cloud metadata), and the size is capped while reading, not after.
import { PermanentSendError } from '../../adapters/channelAdapter.ts';
import type { AttachmentSource, LoadedAttachment } from '../../adapters/wechat/wechatAdapter.ts';
import { fetch, type Agent } from 'undici';
import { connectRefusal, createCheckedDispatcher } from '../events/checkedDispatcher.ts';
import { checkWebhookTarget, WebhookTargetError } from '../events/webhookTarget.ts';
import type { MessageContent } from '../schema/message.ts';
import { readLimitedBody } from '../http/readLimitedBody.ts';

type Attachment = NonNullable<MessageContent['attachments']>[number];

const redirectStatuses = new Set([301, 302, 303, 307, 308]);
const maxRedirects = 3;

export class AttachmentDownloader implements AttachmentSource {
  // Every connection is checked again as it opens: a host that passed the check cannot then resolve elsewhere.
  private readonly dispatcher: Agent;

  constructor(private readonly options: { allowPrivate?: boolean; timeoutMs?: number } = {}) {
    this.dispatcher = createCheckedDispatcher({ allowPrivate: options.allowPrivate ?? false, connectTimeoutMs: options.timeoutMs ?? 10_000 });
  }

  async load(attachment: Attachment, maxBytes: number): Promise<LoadedAttachment> {
    const refused = (code: string, why: string) => new PermanentSendError(code, why);
    let url: URL;
    try {
      url = new URL(attachment.url ?? '');
    } catch {
      throw refused('unsupported_content', 'The attachment has neither a media id nor a valid URL.');
    }
    const signal = AbortSignal.timeout(this.options.timeoutMs ?? 10_000);
    // Redirects are followed by hand so that every hop is checked; error texts name the host only
    // (a signed URL's query is a credential).
    for (let hop = 0; hop <= maxRedirects; hop++) {
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw refused('attachment_refused', `The attachment URL must be http or https, not ${url.protocol}`);
      try {
        await checkWebhookTarget(url.href, this.options.allowPrivate ?? false);
      } catch (error) {
        if (error instanceof WebhookTargetError) throw refused('attachment_refused', `The attachment URL is refused: ${error.message}.`);
        throw new Error(`the attachment host ${url.hostname} does not resolve`);
      }
      let response: Awaited<ReturnType<typeof fetch>>;
      try {
        response = await fetch(url, { redirect: 'manual', signal, dispatcher: this.dispatcher });
      } catch (error) {
        const refusal = connectRefusal(error);
        if (refusal) throw refused('attachment_refused', `The attachment URL is refused: ${refusal.message}.`);
        const name = (error as Error).name;
        throw new Error(`the attachment at ${url.hostname} could not be fetched (${name === 'TimeoutError' ? 'timed out' : name})`);
      }
      if (redirectStatuses.has(response.status)) {
        await response.body?.cancel();
        const location = response.headers.get('location');
        if (!location) throw new Error(`the attachment at ${url.hostname} redirects nowhere`);
        url = new URL(location, url);
        continue;
      }
      if (response.status >= 400 && response.status < 500) {
        await response.body?.cancel();
        throw refused('attachment_unavailable', `The attachment could not be fetched from ${url.hostname} (HTTP ${response.status}).`);
      }
      if (!response.ok || !response.body) throw new Error(`the attachment at ${url.hostname} answered HTTP ${response.status}`);
      const bytes = await readLimitedBody(response, maxBytes, {
        tooLarge: () => refused('attachment_too_large', `The attachment is larger than this channel takes (${Math.floor(maxBytes / 1024)} KB).`),
        unreadable: () => new Error(`the attachment at ${url.hostname} could not be read to the end`),
      });
      // The declared type wins: file hosts often answer application/octet-stream.
      const served = response.headers.get('content-type');
      const generic = !attachment.contentType || attachment.contentType === 'application/octet-stream';
      return { bytes, contentType: generic && served ? served : attachment.contentType };
    }
    throw refused('attachment_unavailable', `The attachment URL redirects more than ${maxRedirects} times.`);
  }

  /** Closes the connections kept for later downloads. */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
