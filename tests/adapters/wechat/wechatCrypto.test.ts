import { describe, expect, it } from 'vitest';
import {
  decryptWechatMessage, encryptedReplyXml, encryptWechatMessage, verifyWechatSignature, wechatSignature, WechatCryptoError,
} from '../../../adapters/wechat/wechatCrypto.ts';

// Vectors from ../shared/PROTOCOLS.md (the official samples, recomputed with node:crypto).
const key = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
const appId = 'wxb11529c136998cb6';
const inboundEncrypt = 'rTNFcsut4LfGuAFKEUVVpwcaCOTJzOd9twZdIW910jb3k+iicx2uvhttIZ3Qg9Qgty3BEF2xbOrz6boTfb30dMomcgrkTqdFPwnhqbk+kIQ7rZiwny9D7NUrTgA5kpX3KsZvrXzUZyP2x9YOlxbgm572lmxKvM7HAQQhIQ/p6HBmoY30bGXFK0BtIu1pW9TjhOYrLQoU18nWYjWqDA1ynkmOytpv7QRI1P1+0NoxL0q2zO1DgeSvnE8CZGo/o5Ap/WHK5W2RAsinpzN4/LjPnmB6U01I5XCoJoC0GK/yMZycd2Oh8Nq6+wBkC1U85oy0ktOY4nLvsQMLrourmMGdZHuTbqpeJ8Ao/5PRYJ+WBvRUwPfGKBL2+2IKZF49vAJqkcGWSHGE76ZN2erXeuNazf/o9o3lIE3q739o4c8t9QGPe31GT2Go/rOz1BsrASwvauNulCh+++yz+CQzBIuikA==';

describe('WeChat signatures and safe-mode crypto', () => {
  it('signs the server URL check', () => {
    expect(wechatSignature('AAAAA', '1714036504', '1514711492')).toBe('f464b24fc39322e44b38aa78f5edd27bd1441696');
    expect(verifyWechatSignature('f464b24fc39322e44b38aa78f5edd27bd1441696', 'AAAAA', '1714036504', '1514711492')).toBe(true);
    expect(verifyWechatSignature('F464B24FC39322E44B38AA78F5EDD27BD1441696', 'AAAAA', '1714036504', '1514711492')).toBe(true);
    expect(verifyWechatSignature('f464b24fc39322e44b38aa78f5edd27bd1441697', 'AAAAA', '1714036504', '1514711492')).toBe(false);
    expect(verifyWechatSignature(undefined, 'AAAAA', '1714036504', '1514711492')).toBe(false);
    expect(verifyWechatSignature('not hex', 'AAAAA', '1714036504', '1514711492')).toBe(false);
  });

  it('checks msg_signature and decrypts the official inbound sample (pad 21)', () => {
    expect(verifyWechatSignature('4f3ad57b6989f09f4eb392acce4f9e93942ed890', 'pamtest', '1458300676', '260774613', inboundEncrypt)).toBe(true);
    const xml = decryptWechatMessage(key, appId, inboundEncrypt);
    expect(xml).toContain('<MsgType><![CDATA[text]]></MsgType>');
    expect(xml).toContain('<Content><![CDATA[hello]]></Content>');
  });

  it('encrypts like the official sample and round-trips', () => {
    expect(encryptWechatMessage(key, appId, '我是中文abcd123', Buffer.from('aaaabbbbccccdddd')))
      .toBe('jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==');
    for (const length of [0, 1, 11, 12, 13, 43, 44, 45, 1000]) {
      const message = 'x'.repeat(length);
      expect(decryptWechatMessage(key, appId, encryptWechatMessage(key, appId, message))).toBe(message);
    }
  });

  it('answers in safe mode with a reply the receiver can verify and decrypt', () => {
    const xml = encryptedReplyXml({ token: 'pamtest', encodingAESKey: key, appId, replyXml: '<xml><Content>hi</Content></xml>', timestamp: '1700000000', nonce: 'n1' });
    const encrypted = /<Encrypt><!\[CDATA\[(.+?)\]\]><\/Encrypt>/.exec(xml)![1]!;
    const signature = /<MsgSignature><!\[CDATA\[(.+?)\]\]>/.exec(xml)![1]!;
    expect(verifyWechatSignature(signature, 'pamtest', '1700000000', 'n1', encrypted)).toBe(true);
    expect(decryptWechatMessage(key, appId, encrypted)).toBe('<xml><Content>hi</Content></xml>');
  });

  it('refuses another appId, broken padding and garbage', () => {
    expect(() => decryptWechatMessage(key, 'wx_other', inboundEncrypt)).toThrow(WechatCryptoError);
    expect(() => decryptWechatMessage(key, appId, 'AAAA')).toThrow(WechatCryptoError);
    expect(() => decryptWechatMessage(key, appId, Buffer.alloc(32, 7).toString('base64'))).toThrow(WechatCryptoError);
    expect(() => decryptWechatMessage('short', appId, inboundEncrypt)).toThrow(WechatCryptoError);
  });
});
