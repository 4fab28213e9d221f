// WeChat Official Account message signing and safe-mode encryption (WXBizMsgCrypt), on node:crypto.
// The facts and vectors are in ../shared/PROTOCOLS.md; the official SDK's padding is PKCS#7 over
// 32-byte blocks, which node's own padding (16-byte blocks) would reject, so padding is done here.
import { createCipheriv, createDecipheriv, hash, randomBytes, timingSafeEqual } from 'node:crypto';

/** sha1 of the sorted parts joined: the URL check and message `signature`, and (with Encrypt) `msg_signature`. */
export function wechatSignature(...parts: string[]): string {
  return hash('sha1', [...parts].sort().join(''), 'hex');
}

export function verifyWechatSignature(expected: string | undefined, ...parts: string[]): boolean {
  if (!expected || !/^[0-9a-f]{40}$/i.test(expected)) return false;
  return timingSafeEqual(Buffer.from(wechatSignature(...parts), 'hex'), Buffer.from(expected.toLowerCase(), 'hex'));
}

export class WechatCryptoError extends Error {}

// An inbox's key is decoded once, not for every push (bounded: a busy gateway has a few thousand inboxes).
const decodedKeys = new Map<string, Buffer>();

function aesKey(encodingAESKey: string): Buffer {
  let key = decodedKeys.get(encodingAESKey);
  if (key) return key;
  key = Buffer.from(`${encodingAESKey}=`, 'base64');
  if (encodingAESKey.length !== 43 || key.length !== 32) throw new WechatCryptoError('EncodingAESKey must be 43 characters of base64');
  if (decodedKeys.size >= 10_000) decodedKeys.clear();
  decodedKeys.set(encodingAESKey, key);
  return key;
}

/** Decrypts a safe-mode `Encrypt` field; the message must carry this appId. Returns the inner XML. */
export function decryptWechatMessage(encodingAESKey: string, appId: string, encrypted: string): string {
  const key = aesKey(encodingAESKey);
  const data = Buffer.from(encrypted, 'base64');
  if (data.length === 0 || data.length % 32 !== 0) throw new WechatCryptoError('Encrypt is not whole 32-byte blocks');
  const decipher = createDecipheriv('aes-256-cbc', key, key.subarray(0, 16));
  decipher.setAutoPadding(false);
  const padded = Buffer.concat([decipher.update(data), decipher.final()]);
  const pad = padded[padded.length - 1]!;
  if (pad < 1 || pad > 32 || !padded.subarray(padded.length - pad).every((b) => b === pad)) throw new WechatCryptoError('bad padding');
  const plain = padded.subarray(0, padded.length - pad);
  if (plain.length < 20) throw new WechatCryptoError('too short');
  const length = plain.readUInt32BE(16);
  if (20 + length > plain.length) throw new WechatCryptoError('bad length');
  const from = plain.subarray(20 + length).toString('utf8');
  if (from !== appId) throw new WechatCryptoError('the message is for another appId');
  return plain.subarray(20, 20 + length).toString('utf8');
}

/** Encrypts a reply for safe mode. `random` is 16 bytes (tests pass the official sample's). */
export function encryptWechatMessage(encodingAESKey: string, appId: string, message: string, random: Buffer = randomBytes(16)): string {
  const key = aesKey(encodingAESKey);
  const body = Buffer.from(message, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  const plain = Buffer.concat([random, length, body, Buffer.from(appId, 'utf8')]);
  const pad = 32 - (plain.length % 32);
  const cipher = createCipheriv('aes-256-cbc', key, key.subarray(0, 16));
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(Buffer.concat([plain, Buffer.alloc(pad, pad)])), cipher.final()]).toString('base64');
}

/** The safe-mode answer: the encrypted reply with its own signature. */
export function encryptedReplyXml(options: { token: string; encodingAESKey: string; appId: string; replyXml: string; timestamp: string; nonce: string }): string {
  const encrypted = encryptWechatMessage(options.encodingAESKey, options.appId, options.replyXml);
  const signature = wechatSignature(options.token, options.timestamp, options.nonce, encrypted);
  return `<xml><Encrypt><![CDATA[${encrypted}]]></Encrypt><MsgSignature><![CDATA[${signature}]]></MsgSignature>`
    + `<TimeStamp>${options.timestamp}</TimeStamp><Nonce><![CDATA[${options.nonce}]]></Nonce></xml>`;
}
