// The SMS provider URLs: inbound messages (`/sms/{inboxId}/inbound`) and delivery receipts
// (`/sms/{inboxId}/status`) for whichever provider the inbox names. Each webhook is verified (the
// provider's signature, or the URL's per-inbox token for providers that sign nothing), parsed whole
// (a lone bad push is refused; in a batch, an item whose sender is no phone number is skipped), and answered the way its provider expects only once
// its messages are durably queued and its opt-outs and receipts recorded. Also the agent's segment count.
import type { Context } from 'koa';
import { z } from 'zod';
import { SmsPayloadError, type SmsAck, type SmsInbound, type SmsProvider, type SmsWebhook } from '../../adapters/sms/smsProvider.ts';
import { smsProviders } from '../../adapters/sms/smsProviders.ts';
import { smsSegments } from '../../adapters/sms/smsSegments.ts';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { badRequest, HttpError, notFound } from '../http/errors.ts';
import type { InboxDirectory, InboxRecord } from '../inboxes/inboxDirectory.ts';
import { inboxTypes } from '../inboxes/inboxTypes.ts';
import type { InboundAcceptor } from '../ingest/acceptInbound.ts';
import { maskPersonalData, type Logger } from '../logger.ts';
import type { InboundMessage } from '../schema/message.ts';
import { ownNumber, toE164 } from './phoneNumbers.ts';
import { optOutKeyword, type SmsOptOuts } from './smsOptOut.ts';
import type { SmsReceipts } from './smsReceipts.ts';
import { smsUrlTokenMatches } from './smsUrlToken.ts';

/** An SMS webhook is a few KiB (an Aliyun batch at most ~1000 items): anything far larger is refused. */
export const smsMaxWebhookBytes = 512 * 1024;
const inboxCacheMs = 2000;

type SmsSettings = z.infer<typeof inboxTypes.sms.settings>;
interface LoadedInbox { inbox: InboxRecord; settings: SmsSettings; credentials: Record<string, unknown>; provider: SmsProvider }

const segmentsBody = z.object({ text: z.string().max(10_000) });
export const segmentsAnswer = z.object({
  encoding: z.enum(['GSM-7', 'UCS-2']).describe('GSM-7 when every character is in the GSM alphabet, else UCS-2'),
  units: z.number().int().describe('length in septets (GSM-7) or UTF-16 units (UCS-2)'),
  segments: z.number().int().describe('how many SMS the text is billed as'),
  perSegment: z.number().int().describe('units per segment at this length: 160/153 (GSM-7) or 70/67 (UCS-2)'),
  remaining: z.number().int().describe('units left in the last segment'),
  provider: z.string(),
  note: z.string().optional(),
});

export class SmsChannel {
  private readonly inboxCache = new Map<string, { at: number; loaded: LoadedInbox | undefined }>();

  constructor(private readonly deps: {
    inboxes: InboxDirectory; acceptor: InboundAcceptor; optOuts: SmsOptOuts; receipts: SmsReceipts; publicUrl: string; log: Logger;
    /** The gateway's own body limit (GATEWAY_BODY_LIMIT): SMS routes never take more than it either. */
    maxBodyBytes?: number;
  }) {}

  registerRoutes(api: ApiRegistry): void {
    const bodyLimitBytes = Math.min(smsMaxWebhookBytes, this.deps.maxBodyBytes ?? smsMaxWebhookBytes);
    api.add({
      method: 'post', path: '/sms/:inboxId/inbound', tag: 'Providers', auth: 'provider', bodyLimitBytes,
      produces: "the provider's ack: Twilio empty TwiML, Aliyun {\"code\":0}, Tencent {\"result\":0}, Vonage 204",
      summary: 'Inbound SMS (the inbox says which provider); Aliyun, Tencent and unsigned Vonage need ?token= from the inbox URLs',
      handler: async (ctx, { params }) => this.receive(ctx, params.inboxId!, 'inbound'),
    });
    api.add({
      method: 'post', path: '/sms/:inboxId/status', tag: 'Providers', auth: 'provider', bodyLimitBytes, produces: "the provider's ack (as for inbound)",
      summary: 'SMS delivery receipts: move a reply sent → delivered / failed, never backwards',
      handler: async (ctx, { params }) => this.receive(ctx, params.inboxId!, 'status'),
    });
    api.add({
      method: 'post', path: '/api/v1/accounts/:accountId/inboxes/:inboxId/sms/segments', tag: 'Inboxes', auth: 'accountOrAgent',
      body: segmentsBody, response: segmentsAnswer,
      summary: 'How many SMS segments a reply costs through this inbox (GSM-7 or UCS-2), before it is sent',
      handler: async (_ctx, { params, body }) => {
        const inbox = await this.deps.inboxes.records.get(params.accountId!, params.inboxId!);
        if (!inbox || inbox.type !== 'sms') throw notFound('inbox');
        const provider = String(inbox.settings.provider);
        const chinaTemplate = provider === 'aliyun' || provider === 'tencent';
        return {
          ...smsSegments(body.text), provider,
          ...(chinaTemplate ? { note: "the reply rides in the approved template: the template's own text and sign name add to the length" } : {}),
        };
      },
    });
  }

  private async load(inboxId: string): Promise<LoadedInbox> {
    const now = Date.now();
    let cached = this.inboxCache.get(inboxId);
    if (!cached || now - cached.at > inboxCacheMs) {
      const inbox = await this.deps.inboxes.records.getAnyAccount(inboxId);
      let loaded: LoadedInbox | undefined;
      if (inbox?.type === 'sms') {
        const settings = inboxTypes.sms.settings.parse(inbox.settings);
        loaded = { inbox, settings, credentials: this.deps.inboxes.credentials(inbox), provider: smsProviders[settings.provider] };
      }
      cached = { at: now, loaded };
      if (this.inboxCache.size > 10_000) this.inboxCache.clear();
      this.inboxCache.set(inboxId, cached);
    }
    if (!cached.loaded) throw notFound('inbox');
    if (!cached.loaded.inbox.enabled) throw new HttpError(403, 'inbox_disabled', 'this inbox is disabled');
    return cached.loaded;
  }

  private async receive(ctx: Context, inboxId: string, kind: 'inbound' | 'status'): Promise<string | undefined> {
    const { inbox, settings, credentials, provider } = await this.load(inboxId);
    const raw = ctx.request.rawBody ?? Buffer.alloc(0);
    if (raw.length > smsMaxWebhookBytes) throw new HttpError(413, 'payload_too_large', `an SMS webhook is at most ${smsMaxWebhookBytes} bytes`);
    const webhook: SmsWebhook = {
      rawBody: raw, contentType: ctx.request.type || '', url: `${this.deps.publicUrl}${ctx.originalUrl}`,
      query: Object.fromEntries(Object.entries(ctx.query).filter(([k]) => k !== 'token').map(([k, v]) => [k, Array.isArray(v) ? v[0] ?? '' : v ?? ''])),
      headers: ctx.headers,
    };
    try {
      // Inside the try: a signed provider's body is parsed to verify it, and a body that does not parse is a 400.
      this.authenticate(webhook, ctx.query.token, settings, credentials, provider);
      if (!raw.length) throw badRequest('the body is empty');
      if (kind === 'status') {
        for (const receipt of provider.parseReceipts(webhook)) await this.deps.receipts.apply(inbox.id, receipt);
        return this.ack(ctx, provider.receiptAck);
      }
      const parsed = provider.parseInbound(webhook);
      const messages: InboundMessage[] = [];
      for (const [i, m] of parsed.entries()) {
        try {
          messages.push(this.normalize(inbox, settings, m, i));
        } catch (error) {
          // One junk sender must not make the provider retry (and finally drop) a whole batch; a lone bad push is a 400.
          if (!(error instanceof SmsPayloadError) || parsed.length === 1) throw error;
          this.deps.log.warn({ inboxId: inbox.id, provider: provider.name, index: i, from: maskPersonalData(m.from.slice(0, 40)) },
            'skipped an SMS in a batch push: the sender is not a phone number');
        }
      }
      await Promise.all(messages.map((m) => this.deps.acceptor.accept(m)));
      for (const m of messages) {
        const keyword = optOutKeyword(m.content.text ?? '');
        if (keyword) {
          await this.deps.optOuts.record({ accountId: inbox.accountId, inboxId: inbox.id, phone: m.from.channelId, externalId: m.externalId, ...keyword });
        }
      }
      return this.ack(ctx, provider.inboundAck);
    } catch (error) {
      if (error instanceof SmsPayloadError) throw badRequest(error.message);
      throw error;
    }
  }

  private authenticate(webhook: SmsWebhook, token: unknown, settings: SmsSettings, credentials: Record<string, unknown>, provider: SmsProvider): void {
    const bySignature = provider.authentication === 'signature' || (provider.authentication === 'signatureOrUrlToken' && provider.signs(credentials));
    if (bySignature) {
      if (!provider.verify(webhook, credentials)) throw new HttpError(401, 'invalid_signature', `the ${provider.name} signature does not match the inbox credentials`);
      return;
    }
    if (token === undefined) throw new HttpError(401, 'missing_token', `${provider.name} webhooks must carry ?token= from the inbox's provider URLs`);
    if (!smsUrlTokenMatches(settings, token)) throw new HttpError(401, 'invalid_token', 'the token does not match this inbox');
  }

  private normalize(inbox: InboxRecord, settings: SmsSettings, m: SmsInbound, index: number): InboundMessage {
    const from = toE164(m.from, { defaultRegion: defaultRegion(settings), countryCode: m.fromCountryCode });
    if (!from) throw new SmsPayloadError(`message ${index}: the sender is not a phone number`);
    const attachments = (m.attachments ?? []).map((a) => ({ url: a.url, contentType: a.contentType }));
    const type = !attachments.length ? 'text' : attachments.every((a) => a.contentType.startsWith('image/')) ? 'image' : 'file';
    return {
      accountId: inbox.accountId, inboxId: inbox.id, channel: 'sms', externalId: m.externalId.slice(0, 1000),
      from: { channelId: from }, to: { channelId: ownNumber(m.to, defaultRegion(settings)) || inbox.id }, sentAt: m.sentAt,
      content: { type, text: m.text, ...(attachments.length ? { attachments } : {}) },
    };
  }

  private ack(ctx: Context, ack: SmsAck): string | undefined {
    // No body: the route answers 204.
    if (ack.body === undefined) return undefined;
    if (ack.type) ctx.type = ack.type;
    return ack.body;
  }
}

/** National numbers read in the inbox's region; Aliyun and Tencent carry mainland numbers in national form, so CN unless set. */
function defaultRegion(settings: SmsSettings): string | undefined {
  return settings.defaultRegion ?? (settings.provider === 'aliyun' || settings.provider === 'tencent' ? 'CN' : undefined);
}
