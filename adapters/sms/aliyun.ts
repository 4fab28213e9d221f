// Aliyun SMS (阿里云短信服务): uplink pushes and delivery receipts arrive as JSON arrays with no signature
// (the URL carries the inbox's token, checked by the core); SendSms is an RPC call signed with
// HMAC-SHA1 (signature version 1.0), through the approved template whose one variable carries the reply.
import { createHmac, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { parsePhoneNumberFromString } from 'libphonenumber-js';
import {
  idString, jsonItems, nonEmpty, parsePayload, readProviderJson, SmsProviderError, apiBase,
  type SmsInbound, type SmsProvider, type SmsReceipt, type SmsSendRequest, type SmsSent, type SmsWebhook,
} from './smsProvider.ts';

const defaultApiBase = 'https://dysmsapi.aliyuncs.com';
type AliyunCredentials = { accessKeyId: string; accessKeySecret: string; signName: string; templateCode: string };

const uplink = z.object({
  phone_number: nonEmpty, content: z.string(), send_time: z.string().optional(), dest_code: z.string().optional(),
  sequence_id: idString, sign_name: z.string().optional(),
}).loose();
const report = z.object({
  phone_number: z.string().optional(), send_time: z.string().optional(), report_time: z.string().optional(),
  success: z.union([z.boolean(), z.enum(['true', 'false'])]).transform((v) => v === true || v === 'true'),
  err_code: z.string().optional(), err_msg: z.string().optional(), biz_id: z.string().optional(), out_id: z.string().optional(),
}).loose().refine((r) => r.biz_id || r.out_id, 'biz_id or out_id is required');

/** Aliyun's times are Beijing time without a zone: "2017-02-02 22:23:24". */
export function beijingTime(value: string | undefined): string {
  const m = value && /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})$/.exec(value.trim());
  return m ? new Date(`${m[1]}T${m[2]}+08:00`).toISOString() : new Date().toISOString();
}

/** The body's items, big numeric ids read as their digits rather than as a rounded number. */
function jsonArray(webhook: SmsWebhook, what: string): unknown[] {
  return jsonItems(Buffer.from(webhook.rawBody.toString('utf8').replace(/("(?:sequence_id|biz_id)"\s*:\s*)(\d+)/g, '$1"$2"')), what);
}

/** Percent-encoding as Aliyun's RPC signature defines it (RFC 3986, with ~ left alone). */
function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Signature version 1.0: base64 HMAC-SHA1(secret + "&", "POST&%2F&" + the encoded sorted query). */
export function aliyunSignature(secret: string, method: string, params: Record<string, string>): string {
  const canonical = Object.keys(params).sort().map((k) => `${percentEncode(k)}=${percentEncode(params[k]!)}`).join('&');
  return createHmac('sha1', `${secret}&`).update(`${method}&${percentEncode('/')}&${percentEncode(canonical)}`).digest('base64');
}

/** Mainland numbers go national; others as country code + number (no plus), as SendSms takes them. */
export function aliyunPhoneNumber(e164: string): string {
  const parsed = parsePhoneNumberFromString(e164);
  if (parsed?.countryCallingCode === '86') return parsed.nationalNumber;
  return e164.replace(/^\+/, '');
}

/** Codes a retry can mend (Aliyun's own faults, throttling); other isp.* codes (isp.RAM_PERMISSION_DENY, ...) are permanent. */
const retryableCodes = /^(isp\.SYSTEM_ERROR$|isp\.GATEWAY_ERROR$|Throttling|isv\.BUSINESS_LIMIT_CONTROL$|ServiceUnavailable|InternalError)/;

export class AliyunProvider implements SmsProvider {
  readonly name = 'aliyun' as const;
  readonly authentication = 'urlToken' as const;
  readonly inboundAck = { type: 'application/json', body: JSON.stringify({ code: 0, msg: '接收成功' }) };
  readonly receiptAck = this.inboundAck;

  signs(): boolean { return false; }
  verify(): boolean { return false; }

  parseInbound(webhook: SmsWebhook): SmsInbound[] {
    return jsonArray(webhook, 'Aliyun uplink').map((item, i) => {
      const u = parsePayload(uplink, item, `Aliyun uplink [${i}]`);
      return { externalId: u.sequence_id, from: u.phone_number, to: u.dest_code || u.sign_name || 'aliyun', text: u.content, sentAt: beijingTime(u.send_time) };
    });
  }

  parseReceipts(webhook: SmsWebhook): SmsReceipt[] {
    return jsonArray(webhook, 'Aliyun receipt').map((item, i) => {
      const r = parsePayload(report, item, `Aliyun receipt [${i}]`);
      return {
        ...(r.biz_id ? { externalId: r.biz_id } : {}), ...(r.out_id ? { messageId: r.out_id } : {}),
        status: r.success ? 'delivered' : 'failed',
        ...(r.success ? {} : { errorCode: r.err_code || 'UNKNOWN', errorMessage: `Aliyun: not delivered (${r.err_code || 'unknown'}${r.err_msg ? `: ${r.err_msg}` : ''})` }),
      } satisfies SmsReceipt;
    });
  }

  async send(request: SmsSendRequest, signal: AbortSignal): Promise<SmsSent> {
    const c = request.credentials as AliyunCredentials;
    const params: Record<string, string> = {
      AccessKeyId: c.accessKeyId, Action: 'SendSms', Format: 'JSON', RegionId: request.settings.region ?? 'cn-hangzhou',
      SignatureMethod: 'HMAC-SHA1', SignatureNonce: randomUUID(), SignatureVersion: '1.0',
      Timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), Version: '2017-05-25',
      PhoneNumbers: aliyunPhoneNumber(request.to), SignName: c.signName, TemplateCode: c.templateCode,
      TemplateParam: JSON.stringify({ [request.settings.templateVariable]: request.text }), OutId: request.messageId,
    };
    params.Signature = aliyunSignature(c.accessKeySecret, 'POST', params);
    const response = await fetch(`${apiBase(request.settings, defaultApiBase)}/`, {
      method: 'POST', signal, redirect: 'error', dispatcher: request.dispatcher, body: new URLSearchParams(params), headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const answer = await readProviderJson(response, 'Aliyun');
    if (answer.Code === 'OK' && typeof answer.BizId === 'string') return { externalId: answer.BizId };
    const code = String(answer.Code ?? `http_${response.status}`);
    throw new SmsProviderError(code, `Aliyun refused the message: ${code}${answer.Message ? ` (${String(answer.Message)})` : ''}`,
      retryableCodes.test(code) || response.status >= 500, response.status < 500 && !/^InternalError/.test(code));
  }
}
