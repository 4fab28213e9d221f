// WeChat Pay API v3 notifications: signature verified against the exact raw body (platform certificate
// serial or WeChat Pay public key id), timestamp within 5 minutes, resource decrypted with
// AEAD_AES_256_GCM and its tag checked, then normalized into a payment. All on node:crypto:
// wechatpay-node-v3 skips the GCM tag and the timestamp (../shared/PROTOCOLS.md).
import { createDecipheriv, createPublicKey, createVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { z } from 'zod';

export class WechatpayAuthError extends Error {
  constructor(message: string, readonly unknownSerial = false) {
    super(message);
  }
}
export class WechatpayPayloadError extends Error {}

const maxSkewSeconds = 300;

/** The keys a merchant's notifications may be signed with, by `Wechatpay-Serial`. */
export function wechatpayVerificationKeys(credentials: {
  publicKeyId?: string; publicKey?: string; platformCertificates?: { serialNo: string; certificate: string }[];
}): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  if (credentials.publicKeyId && credentials.publicKey) keys.set(credentials.publicKeyId, createPublicKey(credentials.publicKey));
  for (const c of credentials.platformCertificates ?? []) keys.set(c.serialNo.toUpperCase(), new X509Certificate(c.certificate).publicKey);
  return keys;
}

/** Throws WechatpayAuthError unless the notification is signed by one of the keys, recently. */
export function verifyWechatpaySignature(options: {
  headers: Record<string, string | undefined>; rawBody: Buffer; keys: Map<string, KeyObject>; nowSeconds?: number;
}): void {
  const h = options.headers;
  const serial = h['wechatpay-serial'];
  const signature = h['wechatpay-signature'];
  const timestamp = h['wechatpay-timestamp'];
  const nonce = h['wechatpay-nonce'];
  if (!serial || !signature || !timestamp || !nonce) throw new WechatpayAuthError('Wechatpay-Serial, -Signature, -Timestamp and -Nonce are required');
  if (!/^\d{1,12}$/.test(timestamp)) throw new WechatpayAuthError('Wechatpay-Timestamp is not a number of seconds');
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > maxSkewSeconds) throw new WechatpayAuthError('Wechatpay-Timestamp is more than 5 minutes off');
  const key = options.keys.get(serial) ?? options.keys.get(serial.toUpperCase());
  if (!key) throw new WechatpayAuthError(`no platform certificate or public key ${serial.slice(0, 64)} is configured for this inbox`, true);
  const verifier = createVerify('RSA-SHA256');
  verifier.update(`${timestamp}\n${nonce}\n`);
  verifier.update(options.rawBody);
  verifier.update('\n');
  let valid = false;
  try {
    valid = verifier.verify(key, signature, 'base64');
  } catch {
    valid = false;
  }
  if (!valid) throw new WechatpayAuthError('Wechatpay-Signature does not verify');
}

const notificationSchema = z.object({
  id: z.string().min(1).max(100),
  create_time: z.string().max(64),
  event_type: z.string().min(1).max(64),
  resource_type: z.string().max(64).optional(),
  summary: z.string().max(1000).optional(),
  resource: z.object({
    algorithm: z.literal('AEAD_AES_256_GCM'),
    ciphertext: z.string().min(1).max(1_000_000),
    associated_data: z.string().max(1000).optional(),
    nonce: z.string().min(1).max(64),
    original_type: z.string().optional(),
  }),
});
export type WechatpayNotification = z.infer<typeof notificationSchema>;

export function parseWechatpayNotification(raw: Buffer): WechatpayNotification {
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new WechatpayPayloadError('the body is not JSON');
  }
  const parsed = notificationSchema.safeParse(json);
  if (!parsed.success) throw new WechatpayPayloadError(`not a WeChat Pay notification: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** AEAD_AES_256_GCM with the APIv3 key; the ciphertext ends with the 16-byte tag, which must check. */
export function decryptWechatpayResource(apiV3Key: string, resource: WechatpayNotification['resource']): string {
  const data = Buffer.from(resource.ciphertext, 'base64');
  if (data.length <= 16) throw new WechatpayPayloadError('resource.ciphertext is too short');
  try {
    const decipher = createDecipheriv('aes-256-gcm', Buffer.from(apiV3Key, 'utf8'), Buffer.from(resource.nonce, 'utf8'));
    decipher.setAuthTag(data.subarray(data.length - 16));
    decipher.setAAD(Buffer.from(resource.associated_data ?? '', 'utf8'));
    return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    throw new WechatpayAuthError('resource does not decrypt with the inbox apiV3Key (GCM tag mismatch)');
  }
}

export interface Payment {
  type: 'payment.succeeded' | 'payment.refunded';
  notificationId: string;
  transactionId: string;
  outTradeNo: string;
  /** The payer's OpenID: the same person as on the official account. Refund notifications carry none. */
  openId?: string;
  appId?: string;
  amount: { total: number; currency: string; payerTotal?: number; refund?: number };
  refundId?: string;
  outRefundNo?: string;
  status: string;
  at: string;
}

const transactionSchema = z.object({
  appid: z.string().optional(), mchid: z.string(), out_trade_no: z.string(), transaction_id: z.string(), trade_state: z.string(),
  success_time: z.string().optional(), payer: z.object({ openid: z.string().min(1) }).optional(),
  amount: z.object({ total: z.number().int(), payer_total: z.number().int().optional(), currency: z.string().default('CNY') }),
});
const refundSchema = z.object({
  mchid: z.string(), out_trade_no: z.string(), transaction_id: z.string(), out_refund_no: z.string(), refund_id: z.string(),
  refund_status: z.string(), success_time: z.string().optional(),
  amount: z.object({ total: z.number().int(), refund: z.number().int(), payer_total: z.number().int().optional(), currency: z.string().default('CNY') }).passthrough(),
});

/** The decrypted resource as a payment; undefined for event types that are not payments or refunds. */
export function normalizeWechatpayResource(notification: WechatpayNotification, plaintext: string): Payment | undefined {
  let json: unknown;
  try {
    json = JSON.parse(plaintext);
  } catch {
    throw new WechatpayPayloadError('the decrypted resource is not JSON');
  }
  const issues = (e: z.ZodError) => e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  if (notification.event_type === 'TRANSACTION.SUCCESS') {
    const r = transactionSchema.safeParse(json);
    if (!r.success) throw new WechatpayPayloadError(`transaction resource: ${issues(r.error)}`);
    const t = r.data;
    return {
      type: 'payment.succeeded', notificationId: notification.id, transactionId: t.transaction_id, outTradeNo: t.out_trade_no,
      ...(t.payer ? { openId: t.payer.openid } : {}), ...(t.appid ? { appId: t.appid } : {}),
      amount: { total: t.amount.total, currency: t.amount.currency, ...(t.amount.payer_total !== undefined ? { payerTotal: t.amount.payer_total } : {}) },
      status: t.trade_state, at: t.success_time ?? notification.create_time,
    };
  }
  if (notification.event_type.startsWith('REFUND.')) {
    const r = refundSchema.safeParse(json);
    if (!r.success) throw new WechatpayPayloadError(`refund resource: ${issues(r.error)}`);
    const f = r.data;
    return {
      type: 'payment.refunded', notificationId: notification.id, transactionId: f.transaction_id, outTradeNo: f.out_trade_no,
      refundId: f.refund_id, outRefundNo: f.out_refund_no,
      amount: { total: f.amount.total, refund: f.amount.refund, currency: f.amount.currency as string },
      status: f.refund_status, at: f.success_time ?? notification.create_time,
    };
  }
  return undefined;
}
