// Sends an agent's SMS reply through the inbox's provider, once: a marker is set in Redis before the
// provider is called, so a retry (or another process after a crash) never calls it a second time for
// the same message; a young marker means another attempt is still in flight (retried later, never failed).
// Only a definite refusal clears it. When the provider did not answer (timeout, 5xx, unreadable), the retry asks the
// provider whether the message went out where it can be asked (Twilio); elsewhere the message fails
// with `send_outcome_unknown` rather than risk sending it twice. Opted-out numbers are refused, and the
// inbox's rate holds across every worker process (script takeSmsSendSlot).
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { PermanentSendError, requestNeverLeft, RetryableSendError, SendInFlightError, type ChannelAdapter, type SendRequest, type SendResult } from '../../adapters/channelAdapter.ts';
import { SmsProviderError, type SmsProvider, type SmsSendRequest } from '../../adapters/sms/smsProvider.ts';
import { smsProviders } from '../../adapters/sms/smsProviders.ts';
import { runScript } from '../commands/index.ts';
import type { Agent } from 'undici';
import { connectRefusal, connectTimeoutFor, createCheckedDispatcher, type AddressLookup } from '../events/checkedDispatcher.ts';
import { checkWebhookTarget, WebhookTargetError } from '../events/webhookTarget.ts';
import { credentialSchemaFor, inboxTypes, providerUrls } from '../inboxes/inboxTypes.ts';
import type { Logger } from '../logger.ts';
import { updateMessageStatus } from '../outbound/outboundWorker.ts';
import type { Keyspace } from '../redis/keys.ts';
import type { SmsOptOuts } from './smsOptOut.ts';
import type { SmsReceipts } from './smsReceipts.ts';

/** How long a send marker lives: longer than every retry of the outbound job, and than its failed job is kept (7 days). */
const markerSeconds = 14 * 86_400;
/** Twilio's limit for one message body (longer ones it refuses). */
export const smsMaxTextLength = 1600;
/** Added to the send timeout before a `sending:` marker counts as abandoned (clock skew, a slow event loop). */
const inFlightMarginMs = 5_000;

export interface SmsSenderDeps {
  redis: Redis; keys: Keyspace; log: Logger; optOuts: SmsOptOuts; receipts: SmsReceipts; publicUrl: string;
  /** How long to wait for the provider's answer before treating the outcome as unknown. */
  sendTimeoutMs?: number;
  /** Whether an inbox's apiBaseUrl may name a loopback or private address (GATEWAY_PROVIDER_PRIVATE_TARGETS). */
  allowPrivateTargets?: boolean;
  providers?: Record<string, SmsProvider>;
  /** How an apiBaseUrl's name becomes addresses, checked as each connection opens (the system's resolver unless given). */
  lookup?: AddressLookup;
}

export class SmsSender implements ChannelAdapter {
  readonly type = 'sms';
  private readonly providers: Record<string, SmsProvider>;
  // Each connection is checked as it opens, on the addresses its own lookup found (no DNS rebinding past a check).
  private readonly dispatcher: Agent;

  constructor(private readonly deps: SmsSenderDeps) {
    this.providers = deps.providers ?? smsProviders;
    // Connects time out on their own first: a connect that hangs is then "never sent" (retried), not unknown.
    this.dispatcher = createCheckedDispatcher({ allowPrivate: deps.allowPrivateTargets ?? false, connectTimeoutMs: connectTimeoutFor(this.timeoutMs), lookup: deps.lookup });
  }

  /** Closes the connections kept to the providers. */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  async send(request: SendRequest): Promise<SendResult> {
    const { redis, keys } = this.deps;
    const { inbox, message } = request;
    const settings = inboxTypes.sms.settings.parse(inbox.settings);
    const provider = this.providers[settings.provider]!;
    const credentials = credentialSchemaFor('sms', settings).safeParse(request.credentials);
    if (!credentials.success) throw new PermanentSendError('invalid_credentials', `The inbox's ${settings.provider} credentials are incomplete: ${credentials.error.issues[0]?.message ?? 'invalid'}.`);

    const optedOutAt = await this.deps.optOuts.optedOutAt(inbox.id, request.to);
    if (optedOutAt) {
      throw new PermanentSendError('sms_opted_out',
        `The contact opted out of SMS from this inbox (they replied STOP on ${optedOutAt}); nothing is sent until they reply START.`);
    }
    const sendRequest: SmsSendRequest = {
      credentials: credentials.data as Record<string, unknown>, to: request.to, text: replyText(message.content, settings.provider),
      messageId: message.id, statusUrl: providerUrls('sms', inbox.id, this.deps.publicUrl, inbox.settings).statusUrl!,
      mediaUrls: (message.content.attachments ?? []).flatMap((a) => (a.url ? [a.url] : [])),
      settings: { apiBaseUrl: settings.apiBaseUrl, templateVariable: settings.templateVariable, region: settings.region },
      dispatcher: this.dispatcher,
    };

    // Markers: `sending:<ts>:<owner>` while a call may be in flight; `unknown:<ts>` once that call ended
    // without a definite answer; `sent:<ids>` once the provider took it.
    if (settings.apiBaseUrl) await this.checkProviderUrl(settings.apiBaseUrl);

    const markerKey = keys.smsSendMarker(message.id);
    const marker = await redis.get(markerKey);
    if (marker?.startsWith('sent:')) return this.recordSent(request, marker.slice(5).split(','));
    if (marker?.startsWith('sending:')) {
      const age = Date.now() - Number(marker.split(':')[1]);
      const limit = this.timeoutMs + inFlightMarginMs;
      if (!(age >= limit)) {
        throw new SendInFlightError(Math.max(1000, limit - age), 'another attempt is still waiting on the provider for this SMS; this one checks again later');
      }
    }
    if (marker?.startsWith('sending:') || marker?.startsWith('unknown:')) {
      // A previous attempt got no answer: the provider may or may not have the message.
      if (!provider.findSent) {
        throw new PermanentSendError('send_outcome_unknown',
          `${provider.name} did not answer an earlier attempt to send this message, and cannot be asked whether it went out; `
          + 'it is not sent again so the customer never gets it twice. Check the provider console, and send it again if it is missing.');
      }
      const candidates = await provider.findSent(sendRequest, new Date(Number(marker.split(':')[1])), AbortSignal.timeout(this.timeoutMs))
        .catch((error: unknown) => {
          const refusal = connectRefusal(error);
          // Refused as the connection opened: the provider cannot be asked, and no retry changes that.
          if (refusal) throw providerUrlRefused(refusal);
          throw error;
        });
      // The same text to the same number twice: a sid another message already owns is that message's.
      let found: string | undefined;
      for (const sid of candidates) {
        const owner = await this.deps.receipts.messageFor(inbox.id, sid);
        if (!owner || owner === message.id) { found = sid; break; }
      }
      if (found) {
        await redis.set(markerKey, `sent:${found}`, 'EX', markerSeconds);
        return this.recordSent(request, [found]);
      }
      this.deps.log.info({ messageId: message.id, provider: provider.name }, 'an unanswered SMS send was not found at the provider; sending it now');
    }

    await this.takeSendSlot(inbox.id, settings.sendsPerSecond);
    // Set before the call: from here on, only a provider's answer may clear it.
    const startedAt = Date.now();
    const mine = `sending:${startedAt}:${randomUUID()}`;
    const taken = marker
      ? await this.replaceMarker(markerKey, marker, mine)
      : await redis.set(markerKey, mine, 'EX', markerSeconds, 'NX');
    if (taken !== 'OK') throw new SendInFlightError(1000, 'another process is sending this SMS; this attempt leaves it to that one');
    // The call ended without a definite answer: no longer in flight, outcome unknown.
    const markUnknown = () => this.replaceMarker(markerKey, mine, `unknown:${startedAt}`);

    let sent;
    try {
      sent = await provider.send(sendRequest, AbortSignal.timeout(this.timeoutMs));
    } catch (error) {
      if (error instanceof SmsProviderError && !error.refused) {
        await markUnknown();
        // A 5xx or unreadable answer: the provider may have the message, so the marker stays and the retry checks first.
        throw new Error(`${provider.name} answered the send with an error that does not say it was refused (${error.code}: ${error.message}); the retry checks before sending again`);
      }
      if (error instanceof SmsProviderError) {
        // The provider refused: nothing was sent, so a retry may send.
        await redis.del(markerKey);
        if (!error.retryable) throw new PermanentSendError(error.code, error.message);
        throw new RetryableSendError(error.code, `${error.message}; the send will be retried`);
      }
      const refusal = connectRefusal(error);
      if (refusal) {
        // Refused as the connection opened: nothing left this host.
        await redis.del(markerKey);
        throw providerUrlRefused(refusal);
      }
      if (requestNeverLeft(error)) {
        await redis.del(markerKey);
        throw new Error(`${provider.name} could not be reached (${errorCode(error)}); the send will be retried`);
      }
      await markUnknown();
      throw new Error(`${provider.name} did not answer the send (${(error as Error).name}: ${(error as Error).message}); the retry checks before sending again`);
    }
    // Every id (Vonage: one per part), so a retry that finds this marker maps every part's receipts.
    const ids = [sent.externalId, ...(sent.partIds ?? [])];
    await redis.set(markerKey, `sent:${ids.join(',')}`, 'EX', markerSeconds);
    return this.recordSent(request, ids);
  }

  /**
   * A tenant sets apiBaseUrl: it must not lead the gateway's provider calls to its own network. The URL itself is
   * checked here, before send and findSent; what its name resolves to, as each connection opens (the dispatcher).
   */
  private async checkProviderUrl(base: string): Promise<void> {
    try {
      await checkWebhookTarget(base, this.deps.allowPrivateTargets ?? false, false);
    } catch (error) {
      if (error instanceof WebhookTargetError) {
        throw providerUrlRefused(error);
      }
      throw new Error(`The inbox's apiBaseUrl cannot be checked (${(error as Error).message}); the send will be retried`);
    }
  }

  /** Swaps the marker only if it still holds `expected` (another attempt may have taken it meanwhile). */
  private async replaceMarker(key: string, expected: string, next: string): Promise<'OK' | null> {
    const swapped = await runScript(this.deps.redis, 'replaceSendMarker', [key], [expected, next, markerSeconds]);
    return Number(swapped) === 1 ? 'OK' : null;
  }

  private get timeoutMs(): number {
    return this.deps.sendTimeoutMs ?? 15_000;
  }

  /** Marks the message sent (message.sent) before receipts that came first move it on. */
  private async recordSent(request: SendRequest, externalIds: string[]): Promise<SendResult> {
    const { message, inbox } = request;
    await updateMessageStatus(this.deps.redis, this.deps.keys, message.id, message.conversationId, { status: 'sent', externalId: externalIds[0] });
    await this.deps.receipts.remember(inbox.id, message.id, externalIds);
    return { status: 'sent', externalId: externalIds[0] };
  }

  /** Waits for the inbox's next send slot (shared by every process through Redis). */
  private async takeSendSlot(inboxId: string, sendsPerSecond: number): Promise<void> {
    const interval = 1000 / sendsPerSecond;
    const burst = Math.max(1, Math.ceil(sendsPerSecond));
    for (;;) {
      const wait = Number(await runScript(this.deps.redis, 'takeSmsSendSlot', [this.deps.keys.smsSendRate(inboxId)], [interval, burst]));
      if (wait <= 0) return;
      await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 5000)));
    }
  }
}

/** The text one SMS carries: a text reply, or (Twilio MMS) attachments with an optional caption. */
function replyText(content: SendRequest['message']['content'], provider: string): string {
  const text = content.text?.trim() ? content.text : '';
  const attachments = content.attachments ?? [];
  if (attachments.length && (provider !== 'twilio' || attachments.some((a) => !a.url))) {
    throw new PermanentSendError('unsupported_content', provider === 'twilio'
      ? 'Twilio MMS attachments need a URL.' : `${provider} SMS carries text only: send the attachment as a link in the text.`);
  }
  if (!['text', 'image', 'file', 'video', 'audio'].includes(content.type) || (!text && !attachments.length)) {
    throw new PermanentSendError('unsupported_content', 'An SMS reply needs text.');
  }
  if (text.length > smsMaxTextLength) throw new PermanentSendError('text_too_long', `An SMS reply is at most ${smsMaxTextLength} characters.`);
  return text;
}

function errorCode(error: unknown): string {
  const e = error as { code?: string; cause?: { code?: string } };
  return e.cause?.code ?? e.code ?? '';
}

/** The inbox's apiBaseUrl leads to an address the gateway may not call: final, whichever check refused it. */
function providerUrlRefused(refusal: WebhookTargetError): PermanentSendError {
  return new PermanentSendError('provider_url_refused', `The inbox's apiBaseUrl is refused: ${refusal.message}.`);
}
