// WeChat Pay platform certificates, downloaded with a signed merchant request (GET /v3/certificates),
// decrypted with the APIv3 key (GCM tag checked) and shared by every process through Redis. Fetched
// when a notification names a serial we do not know (WeChat Pay rotates them), at most once a minute.
import type { KeyObject } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { MerchantRequestSigner } from '../../adapters/wechatpay/merchantRequestSigner.ts';
import { decryptWechatpayResource, wechatpayVerificationKeys } from '../../adapters/wechatpay/wechatpayNotification.ts';
import type { InboxRecord } from '../inboxes/inboxDirectory.ts';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';

export const defaultWechatpayApiBase = 'https://api.mch.weixin.qq.com';
const refreshThrottleSeconds = 60;
const requestTimeoutMs = 10_000;

export interface WechatpayCredentials {
  mchId: string; apiV3Key: string; serialNo: string; privateKey: string;
  publicKeyId?: string; publicKey?: string; platformCertificates?: { serialNo: string; certificate: string }[];
}

const certificatesResponse = z.object({
  data: z.array(z.object({
    serial_no: z.string(), expire_time: z.string().optional(),
    encrypt_certificate: z.object({ algorithm: z.literal('AEAD_AES_256_GCM'), nonce: z.string(), associated_data: z.string().optional(), ciphertext: z.string() }),
  })),
});
type StoredCertificate = { serialNo: string; certificate: string; expireTime?: string };

export class PlatformCertificates {
  constructor(private readonly redis: Redis, private readonly keys: Keyspace, private readonly log: Logger) {}

  private key(inboxId: string) { return this.keys.wechatpayCertificates(inboxId); }

  /** The inbox's configured keys plus the certificates downloaded for it. */
  async verificationKeys(inbox: InboxRecord, credentials: WechatpayCredentials): Promise<Map<string, KeyObject>> {
    const stored = JSON.parse((await this.redis.get(this.key(inbox.id))) ?? '[]') as StoredCertificate[];
    return wechatpayVerificationKeys({ ...credentials, platformCertificates: [...(credentials.platformCertificates ?? []), ...stored] });
  }

  /** Downloads the current certificates unless another caller did within the last minute. Returns whether it fetched. */
  async refresh(inbox: InboxRecord, credentials: WechatpayCredentials): Promise<boolean> {
    const claimed = await this.redis.set(`${this.key(inbox.id)}:refreshing`, '1', 'EX', refreshThrottleSeconds, 'NX');
    if (!claimed) return false;
    const base = ((inbox.settings as { apiBaseUrl?: string }).apiBaseUrl ?? defaultWechatpayApiBase).replace(/\/$/, '');
    const path = '/v3/certificates';
    const signer = new MerchantRequestSigner(credentials);
    const response = await fetch(`${base}${path}`, {
      headers: { authorization: signer.authorization('GET', path), accept: 'application/json', 'user-agent': 'channel-gateway' },
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`WeChat Pay certificates download failed: HTTP ${response.status} ${text.slice(0, 200)}`);
    const parsed = certificatesResponse.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error('WeChat Pay certificates download: unexpected answer');
    const certificates: StoredCertificate[] = parsed.data.data.map((item) => {
      const pem = decryptWechatpayResource(credentials.apiV3Key, item.encrypt_certificate);
      const serial = new X509Certificate(pem).serialNumber;
      if (serial.toUpperCase() !== item.serial_no.toUpperCase()) throw new Error(`certificate ${item.serial_no} carries serial ${serial}`);
      return { serialNo: item.serial_no.toUpperCase(), certificate: pem, ...(item.expire_time ? { expireTime: item.expire_time } : {}) };
    });
    await this.redis.set(this.key(inbox.id), JSON.stringify(certificates));
    this.log.info({ inboxId: inbox.id, serials: certificates.map((c) => c.serialNo) }, 'wechatpay platform certificates refreshed');
    return true;
  }
}
