// Tencent Cloud SMS (腾讯云短信): reply and status callbacks are unsigned JSON (the URL carries the
// inbox's token, checked by the core; status callbacks are arrays); SendSms (2021-01-11) is signed
// with TC3-HMAC-SHA256 and goes through the approved template whose one parameter carries the reply.
import { createHash, createHmac } from 'node:crypto';
import { z } from 'zod';
import {
  jsonItems, nonEmpty, parsePayload, readProviderJson, SmsProviderError, apiBase,
  type SmsInbound, type SmsProvider, type SmsReceipt, type SmsSendRequest, type SmsSent, type SmsWebhook,
} from './smsProvider.ts';
import { keyDigest } from '../../src/ids.ts';

const defaultApiBase = 'https://sms.tencentcloudapi.com';
type TencentCredentials = { secretId: string; secretKey: string; sdkAppId: string; signName: string; templateId: string };

const digits = z.union([z.string().regex(/^\+?\d{1,20}$/), z.number().int().nonnegative()]).transform((v) => String(v).replace(/^\+/, ''));
const reply = z.object({
  mobile: digits, nationcode: digits.default('86'), text: z.string(), time: z.union([z.number(), z.string().regex(/^\d+$/)]).transform(Number),
  extend: z.string().optional(), sign: z.string().optional(),
}).loose();
const status = z.object({
  sid: nonEmpty, report_status: z.enum(['SUCCESS', 'FAIL']), errmsg: z.string().optional(), description: z.string().optional(),
  mobile: z.string().optional(), nationcode: z.string().optional(), user_receive_time: z.string().optional(),
}).loose();

const sha256Hex = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');
const hmac = (key: Buffer | string, value: string) => createHmac('sha256', key).update(value, 'utf8').digest();

/** The TC3-HMAC-SHA256 Authorization header for a JSON POST to / (content-type and host signed). */
export function tc3Authorization(input: { secretId: string; secretKey: string; host: string; service: string; timestamp: number; payload: string }): string {
  const date = new Date(input.timestamp * 1000).toISOString().slice(0, 10);
  const canonicalRequest = ['POST', '/', '', `content-type:application/json; charset=utf-8\nhost:${input.host}\n`, 'content-type;host', sha256Hex(input.payload)].join('\n');
  const scope = `${date}/${input.service}/tc3_request`;
  const stringToSign = ['TC3-HMAC-SHA256', String(input.timestamp), scope, sha256Hex(canonicalRequest)].join('\n');
  const signing = hmac(hmac(hmac(`TC3${input.secretKey}`, date), input.service), 'tc3_request');
  const signature = createHmac('sha256', signing).update(stringToSign, 'utf8').digest('hex');
  return `TC3-HMAC-SHA256 Credential=${input.secretId}/${scope}, SignedHeaders=content-type;host, Signature=${signature}`;
}

/**
 * Codes a quick retry can mend: Tencent's own errors, API throttling, the 30-second per-number gap.
 * Everything else is permanent, the hourly and daily per-number caps (LimitExceeded.PhoneNumberOneHourLimit,
 * ...DailyLimit) included: the job's retries would be over long before the cap resets.
 */
const retryableCodes = /^(InternalError|RequestLimitExceeded|LimitExceeded\.PhoneNumberThirtySecondLimit$)/;

export class TencentProvider implements SmsProvider {
  readonly name = 'tencent' as const;
  readonly authentication = 'urlToken' as const;
  readonly inboundAck = { type: 'application/json', body: JSON.stringify({ result: 0, errmsg: 'OK' }) };
  readonly receiptAck = this.inboundAck;

  signs(): boolean { return false; }
  verify(): boolean { return false; }

  /** A reply callback has no id: the sender, its time and the text name it, so a repeated push is the same message (hence `time` is required: without it, "1" twice would be one message). */
  parseInbound(webhook: SmsWebhook): SmsInbound[] {
    return jsonItems(webhook.rawBody, 'Tencent reply callback').map((item, i) => {
      const r = parsePayload(reply, item, `Tencent reply callback [${i}]`);
      const sentAt = new Date(r.time * 1000).toISOString();
      return {
        externalId: `${r.nationcode}-${r.mobile}-${r.time}-${keyDigest(r.text)}`, from: r.mobile, fromCountryCode: r.nationcode,
        to: r.extend || r.sign || 'tencent', text: r.text, sentAt,
      };
    });
  }

  parseReceipts(webhook: SmsWebhook): SmsReceipt[] {
    return jsonItems(webhook.rawBody, 'Tencent status callback').map((item, i) => {
      const s = parsePayload(status, item, `Tencent status callback [${i}]`);
      if (s.report_status === 'SUCCESS') return { externalId: s.sid, status: 'delivered' } satisfies SmsReceipt;
      const code = s.errmsg || 'FAIL';
      return { externalId: s.sid, status: 'failed', errorCode: code, errorMessage: `Tencent: not delivered (${code}${s.description ? `: ${s.description}` : ''})` } satisfies SmsReceipt;
    });
  }

  async send(request: SmsSendRequest, signal: AbortSignal): Promise<SmsSent> {
    const c = request.credentials as TencentCredentials;
    const base = apiBase(request.settings, defaultApiBase);
    const payload = JSON.stringify({
      PhoneNumberSet: [request.to], SmsSdkAppId: c.sdkAppId, TemplateId: c.templateId, SignName: c.signName,
      TemplateParamSet: [request.text], SessionContext: request.messageId,
    });
    const timestamp = Math.floor(Date.now() / 1000);
    const host = new URL(base).host;
    const response = await fetch(`${base}/`, {
      method: 'POST', signal, redirect: 'error', dispatcher: request.dispatcher, body: payload,
      headers: {
        'content-type': 'application/json; charset=utf-8', 'x-tc-action': 'SendSms', 'x-tc-version': '2021-01-11',
        'x-tc-timestamp': String(timestamp), 'x-tc-region': request.settings.region ?? 'ap-guangzhou',
        authorization: tc3Authorization({ secretId: c.secretId, secretKey: c.secretKey, host, service: 'sms', timestamp, payload }),
      },
    });
    const answer = await readProviderJson(response, 'Tencent Cloud');
    const body = z.object({
      Error: z.object({ Code: z.string(), Message: z.string().optional() }).optional(),
      SendStatusSet: z.array(z.object({ SerialNo: z.string().optional(), Code: z.string(), Message: z.string().optional() }).loose()).optional(),
    }).loose().safeParse(answer.Response);
    if (!body.success) throw new SmsProviderError(`http_${response.status}`, 'Tencent Cloud answered without a Response', response.status >= 500, response.status < 500);
    const error = body.data.Error ?? (body.data.SendStatusSet?.[0]?.Code !== 'Ok' ? body.data.SendStatusSet?.[0] : undefined);
    const serial = body.data.SendStatusSet?.[0]?.SerialNo;
    if (!error && serial) return { externalId: serial };
    const code = error?.Code ?? 'NoSendStatus';
    throw new SmsProviderError(code, `Tencent Cloud refused the message: ${code}${error?.Message ? ` (${error.Message})` : ''}`, retryableCodes.test(code), response.status < 500 && !/^InternalError/.test(code));
  }
}
