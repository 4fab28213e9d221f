// What each inbox type takes: public settings and write-only credentials, in the providers' own terms.
import { z } from 'zod';
import type { Channel } from '../schema/message.ts';

const apiBaseUrl = z.string().url().optional().describe('provider API base URL (for proxies with fixed egress IPs)');
const origin = z.string().regex(/^(\*|https?:\/\/[^/\s]+)$/, 'an origin like https://shop.example.com, or *');

export const inboxTypes = {
  webchat: {
    channel: 'webchat',
    settings: z.object({
      allowedOrigins: z.array(origin).max(100).default(['*']).describe('page origins allowed to open the chat; * for any'),
      title: z.string().max(100).optional(),
      color: z.string().regex(/^#[0-9a-fA-F]{3,8}$/).optional(),
      greeting: z.string().max(1000).optional(),
    }).strict(),
    credentials: z.object({ identitySecret: z.string().min(16).max(200).optional() }).strict(),
  },
  wechat: {
    channel: 'wechat',
    settings: z.object({
      apiBaseUrl,
      welcomeText: z.string().min(1).max(600).optional().describe('sent as the passive reply to a new follower (subscribe)'),
      tokenMode: z.enum(['token', 'stable_token']).default('token').describe('how the access_token is fetched: cgi-bin/token or cgi-bin/stable_token'),
    }).strict(),
    credentials: z.object({
      appId: z.string().min(1), appSecret: z.string().min(1), token: z.string().min(3).max(32),
      encodingAESKey: z.string().length(43).optional(),
    }).strict(),
  },
  wechatpay: {
    channel: 'wechat',
    settings: z.object({ apiBaseUrl }).strict(),
    credentials: z.object({
      mchId: z.string().min(1), apiV3Key: z.string().length(32), serialNo: z.string().min(1), privateKey: z.string().min(1),
      platformCertificates: z.array(z.object({ serialNo: z.string(), certificate: z.string() })).optional(),
      publicKeyId: z.string().optional(), publicKey: z.string().optional(),
    }).strict(),
  },
  sms: {
    channel: 'sms',
    settings: z.object({
      provider: z.enum(['twilio', 'aliyun', 'tencent', 'vonage']), apiBaseUrl,
      // SMS settings (see the README's SMS section): numbers, the webhook URL token, sending limits and templates.
      defaultRegion: z.string().regex(/^[A-Z]{2}$/, 'an ISO 3166 country code like CN or US').optional()
        .describe('the country of national numbers (without +country code), for E.164'),
      urlToken: z.string().regex(/^[A-Za-z0-9_-]{32,128}$/).optional()
        .describe("the secret in the provider URLs' ?token= (generated when the inbox is created; Aliyun, Tencent and unsigned Vonage pushes need it)"),
      sendsPerSecond: z.number().positive().max(1000).default(10).describe("this inbox's sending rate, across every worker process"),
      templateVariable: z.string().min(1).max(64).default('content').describe("Aliyun: the template variable that carries the agent's reply"),
      region: z.string().min(1).max(64).optional().describe('Aliyun RegionId (cn-hangzhou) or Tencent X-TC-Region (ap-guangzhou)'),
    }).strict(),
    credentials: z.record(z.string(), z.unknown()),
  },
  email: {
    channel: 'email',
    settings: z.object({
      apiBaseUrl,
      subjectWindowMinutes: z.number().int().min(0).max(7 * 24 * 60).default(60)
        .describe('a mail with no thread headers joins the same contact\'s conversation of the same subject within this window; 0: never by subject'),
      automatedMailOpensConversation: z.boolean().default(false)
        .describe('auto-replies, bulk mail and mailer-daemon mail that answer no conversation open one (default: dropped)'),
      afterProcessing: z.enum(['none', 'seen', 'move']).default('none').describe('IMAP: what is done to a mail once it is queued'),
      processedMailbox: z.string().min(1).max(200).optional().describe('IMAP: where afterProcessing "move" puts processed mail'),
      pollIntervalSeconds: z.number().int().min(5).max(3600).default(60).describe('IMAP: a check besides IDLE, for servers that drop it'),
      keepOriginalMail: z.enum(['always', 'whenTrimmed', 'never']).default('whenTrimmed')
        .describe('store the mail as received (original.eml) beside the agent\'s view: always, or when that view dropped quoted text or a signature the HTML does not carry'),
      maxMailBytes: z.number().int().min(64 * 1024).max(100 * 1024 * 1024).default(25 * 1024 * 1024)
        .describe('larger mail is kept truncated (headers, the start of the text, a note)'),
      inboundWebhookProvider: z.enum(['mailgun', 'sendgrid', 'postmark']).optional()
        .describe('who posts inbound mail to POST /email/{inboxId}/inbound; unset: the URL refuses posts'),
      webhookMaxAgeSeconds: z.number().int().min(30).max(86_400).default(300)
        .describe('Mailgun: how far a signed timestamp may be from now'),
    }).strict(),
    credentials: z.object({
      imap: z.object({ host: z.string(), port: z.number().int(), secure: z.boolean(), user: z.string(), pass: z.string(), mailbox: z.string().default('INBOX') }).optional(),
      smtp: z.object({ host: z.string(), port: z.number().int(), secure: z.boolean(), user: z.string(), pass: z.string() }).optional(),
      fromAddress: z.string().email(),
      webhookSigningKey: z.string().optional(),
    }).strict(),
  },
} as const satisfies Record<string, { channel: Channel; settings: z.ZodType; credentials: z.ZodType }>;

export type InboxType = keyof typeof inboxTypes;
export const inboxTypeSchema = z.enum(Object.keys(inboxTypes) as [InboxType, ...InboxType[]]);

const smsCredentials = {
  twilio: z.object({ accountSid: z.string().min(1), authToken: z.string().min(1), from: z.string().optional(), messagingServiceSid: z.string().optional() })
    .strict().refine((c) => c.from || c.messagingServiceSid, 'from or messagingServiceSid is required'),
  aliyun: z.object({ accessKeyId: z.string().min(1), accessKeySecret: z.string().min(1), signName: z.string().min(1), templateCode: z.string().min(1) }).strict(),
  tencent: z.object({ secretId: z.string().min(1), secretKey: z.string().min(1), sdkAppId: z.string().min(1), signName: z.string().min(1), templateId: z.string().min(1) }).strict(),
  vonage: z.object({ apiKey: z.string().min(1), apiSecret: z.string().min(1), signatureSecret: z.string().optional(), signatureMethod: z.enum(['md5hash', 'md5', 'sha1', 'sha256', 'sha512']).optional(), from: z.string().min(1) }).strict(),
};

/** The credential schema for an inbox of this type (SMS depends on the provider chosen in settings). */
export function credentialSchemaFor(type: InboxType, settings: Record<string, unknown>): z.ZodType {
  if (type === 'sms') return smsCredentials[settings.provider as keyof typeof smsCredentials] ?? z.never();
  return inboxTypes[type].credentials;
}

/** The URLs a business pastes into the provider's console, for an inbox. */
export function providerUrls(type: InboxType, inboxId: string, publicUrl: string, settings?: Record<string, unknown>): Record<string, string> {
  switch (type) {
    case 'webchat': return {
      widgetScript: `${publicUrl}/webchat/${inboxId}/widget.js`,
      websocket: `${publicUrl.replace(/^http/, 'ws')}/webchat/${inboxId}/ws`,
      embedSnippet: `<script src="${publicUrl}/webchat/${inboxId}/widget.js" async></script>`,
    };
    case 'wechat': return { serverUrl: `${publicUrl}/wechat/${inboxId}` };
    case 'wechatpay': return { notifyUrl: `${publicUrl}/wechatpay/${inboxId}/notify` };
    case 'sms': {
      const token = typeof settings?.urlToken === 'string' ? `?token=${settings.urlToken}` : '';
      return { inboundUrl: `${publicUrl}/sms/${inboxId}/inbound${token}`, statusUrl: `${publicUrl}/sms/${inboxId}/status${token}` };
    }
    case 'email': return { inboundUrl: `${publicUrl}/email/${inboxId}/inbound`, mailgunMimeUrl: `${publicUrl}/email/${inboxId}/inbound?format=mime` };
  }
}
