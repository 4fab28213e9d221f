// Signed, encrypted WeChat Pay notifications as WeChat Pay builds them, from test keys: a generated
// "WeChat Pay public key" and a self-signed "platform certificate" (tests/fixtures/wechatpay, not real).
import { createCipheriv, createSign, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

const fixtures = new URL('../fixtures/wechatpay/', import.meta.url);
export const platformCertificate = readFileSync(new URL('platform-cert.pem', fixtures), 'utf8');
export const platformPrivateKey = readFileSync(new URL('platform-key.pem', fixtures), 'utf8');
export const platformSerial = new X509Certificate(platformCertificate).serialNumber;

const publicKeyPair = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const wechatpayPublicKeyId = 'PUB_KEY_ID_0114232134912410000000000000000001';
export const wechatpayPublicKey = publicKeyPair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const publicKeyPrivate = publicKeyPair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

export const apiV3Key = 'an-apiv3-key-of-32-bytes-long!!!';

export function encryptResource(plaintext: string, key = apiV3Key) {
  const nonce = randomBytes(6).toString('hex');
  const associated = 'transaction';
  const cipher = createCipheriv('aes-256-gcm', Buffer.from(key), Buffer.from(nonce));
  cipher.setAAD(Buffer.from(associated));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]).toString('base64');
  return { algorithm: 'AEAD_AES_256_GCM', ciphertext, associated_data: associated, nonce, original_type: 'transaction' };
}

/** A notification body and its headers, signed by the public key (default) or the platform certificate. */
export function signedNotification(body: Record<string, unknown>, options: { by?: 'publicKey' | 'certificate'; timestamp?: number; tamper?: boolean } = {}) {
  const raw = JSON.stringify(body);
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = randomBytes(16).toString('hex');
  const signer = createSign('RSA-SHA256');
  signer.update(`${timestamp}\n${nonce}\n${raw}\n`);
  const byCertificate = options.by === 'certificate';
  const signature = signer.sign(byCertificate ? platformPrivateKey : publicKeyPrivate, 'base64');
  return {
    raw: options.tamper ? raw.replace('"id":"', '"id":"X') : raw,
    headers: {
      'content-type': 'application/json',
      'wechatpay-serial': byCertificate ? platformSerial : wechatpayPublicKeyId,
      'wechatpay-signature': signature, 'wechatpay-timestamp': timestamp, 'wechatpay-nonce': nonce, 'wechatpay-signature-type': 'WECHATPAY2-SHA256-RSA2048',
    },
  };
}

export function transactionNotification(id: string, openId: string, transactionId: string, total = 1234) {
  return {
    id, create_time: '2026-11-22T10:00:00+08:00', event_type: 'TRANSACTION.SUCCESS', resource_type: 'encrypt-resource', summary: '支付成功',
    resource: encryptResource(JSON.stringify({
      appid: 'wx5823bf96d3bd56c7', mchid: '1900000001', out_trade_no: `order-${transactionId.slice(-4)}`, transaction_id: transactionId,
      trade_type: 'JSAPI', trade_state: 'SUCCESS', trade_state_desc: '支付成功', bank_type: 'CMC', success_time: '2026-11-22T10:00:00+08:00',
      payer: { openid: openId }, amount: { total, payer_total: total, currency: 'CNY', payer_currency: 'CNY' },
    })),
  };
}

export function refundNotification(id: string, transactionId: string, refund = 1234) {
  return {
    id, create_time: '2026-11-22T11:00:00+08:00', event_type: 'REFUND.SUCCESS', resource_type: 'encrypt-resource', summary: '退款成功',
    resource: encryptResource(JSON.stringify({
      mchid: '1900000001', out_trade_no: `order-${transactionId.slice(-4)}`, transaction_id: transactionId, out_refund_no: `refund-${id}`,
      refund_id: `50000${transactionId.slice(-6)}`, refund_status: 'SUCCESS', success_time: '2026-11-22T11:00:00+08:00',
      user_received_account: '招商银行信用卡0403', amount: { total: 1234, refund, payer_total: 1234, payer_refund: refund },
    })),
  };
}
