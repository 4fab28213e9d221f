// Channel credentials at rest: AES-256-GCM that refuses tampering or a wrong key, and an API that
// stores them sealed and never shows them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSecretBox } from '../../src/crypto/secretBox.ts';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

const key = 'k'.repeat(32);

/** Flips one bit of one base64 part of a sealed value (parts: version.iv.tag.body). */
function tamper(sealed: string, part: 1 | 2 | 3): string {
  const parts = sealed.split('.');
  const bytes = Buffer.from(parts[part]!, 'base64');
  bytes[0] = bytes[0]! ^ 0x01;
  parts[part] = bytes.toString('base64');
  return parts.join('.');
}

describe('createSecretBox', () => {
  const box = createSecretBox(key);

  it('opens what it sealed, and seals the same text differently each time', () => {
    const text = JSON.stringify({ appSecret: 'wx-secret-✓', token: 'tok' });
    const first = box.seal(text);
    const second = box.seal(text);
    expect(first).toMatch(/^v1\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]*$/);
    expect(first).not.toBe(second);
    expect(first).not.toContain('wx-secret');
    expect(box.open(first)).toBe(text);
    expect(box.open(second)).toBe(text);
    expect(box.open(box.seal(''))).toBe('');
  });

  it('refuses a tampered ciphertext, tag or iv', () => {
    const sealed = box.seal('the-app-secret');
    expect(() => box.open(tamper(sealed, 3))).toThrow();
    expect(() => box.open(tamper(sealed, 2))).toThrow();
    expect(() => box.open(tamper(sealed, 1))).toThrow();
    expect(() => box.open(sealed.split('.').slice(0, 3).join('.'))).toThrow();
    expect(() => box.open(sealed.replace(/^v1\./, 'v2.'))).toThrow(/unknown sealed format/);
  });

  it('refuses a different key', () => {
    const sealed = box.seal('the-app-secret');
    expect(() => createSecretBox('z'.repeat(32)).open(sealed)).toThrow();
    expect(createSecretBox(key).open(sealed)).toBe('the-app-secret');
  });
});

describe('inbox credentials at rest', () => {
  let t: TestGateway;
  let tenant: Tenant;
  beforeAll(async () => {
    t = await startTestGateway();
    tenant = await createTenant(t);
  });
  afterAll(() => t.stop());

  it('stores wechat credentials sealed and never returns them', async () => {
    const credentials = { appId: 'wx0123456789abcdef', appSecret: 'app-secret-5f2b9c7d1e', token: 'verify-token-77', encodingAESKey: 'A'.repeat(43) };
    const created = await t.api('POST', `/api/v1/accounts/${tenant.accountId}/inboxes`, {
      key: tenant.apiKey, body: { type: 'wechat', name: 'Official account', credentials },
    });
    expect(created.status).toBe(201);
    const inboxId = created.body.id as string;
    expect(created.body.credentialNames).toEqual(['appId', 'appSecret', 'encodingAESKey', 'token']);

    const raw = await t.gateway.redis.get(`${t.prefix}:inbox:${inboxId}`);
    expect(raw).toBeTruthy();
    for (const secret of [credentials.appSecret, credentials.token, credentials.encodingAESKey]) expect(raw).not.toContain(secret);
    const stored = JSON.parse(raw!);
    expect(stored.sealedCredentials).toMatch(/^v1\./);
    expect(JSON.parse(createSecretBox('test-secret-key-0123456789abcdef0123').open(stored.sealedCredentials))).toEqual(credentials);

    const answers = [
      created,
      await t.api('GET', `/api/v1/accounts/${tenant.accountId}/inboxes/${inboxId}`, { key: tenant.apiKey }),
      await t.api('GET', `/api/v1/accounts/${tenant.accountId}/inboxes`, { key: tenant.apiKey }),
      await t.api('PATCH', `/api/v1/accounts/${tenant.accountId}/inboxes/${inboxId}`, { key: tenant.apiKey, body: { name: 'Renamed' } }),
    ];
    for (const answer of answers) {
      expect(answer.status).toBe(200 + (answer === created ? 1 : 0));
      const text = JSON.stringify(answer.body);
      for (const secret of [credentials.appSecret, credentials.token, credentials.encodingAESKey]) expect(text).not.toContain(secret);
      expect(text).not.toContain('sealedCredentials');
      expect(text).not.toContain('"credentials"');
    }
    expect(answers[1]!.body).toMatchObject({ id: inboxId, type: 'wechat', credentialNames: ['appId', 'appSecret', 'encodingAESKey', 'token'] });

    // Replacing credentials seals the new ones and still shows only the names.
    const replaced = await t.api('PATCH', `/api/v1/accounts/${tenant.accountId}/inboxes/${inboxId}`, {
      key: tenant.apiKey, body: { credentials: { appId: 'wx0123456789abcdef', appSecret: 'rotated-secret-9a8b', token: 'verify-token-77' } },
    });
    expect(replaced.status).toBe(200);
    expect(replaced.body.credentialNames).toEqual(['appId', 'appSecret', 'token']);
    expect(JSON.stringify(replaced.body)).not.toContain('rotated-secret-9a8b');
    expect(await t.gateway.redis.get(`${t.prefix}:inbox:${inboxId}`)).not.toContain('rotated-secret-9a8b');
  });
});
