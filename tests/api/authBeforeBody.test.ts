import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, startTestGateway, type Tenant, type TestGateway } from '../support/testGateway.ts';

describe('authentication comes before the body', () => {
  let t: TestGateway;
  let tenant: Tenant;
  beforeAll(async () => {
    t = await startTestGateway({ GATEWAY_BODY_LIMIT: '1024' });
    tenant = await createTenant(t);
  });
  afterAll(() => t.stop());

  it('answers 401 to an unknown caller whatever it sends, and reads the body only for a known one', async () => {
    const path = `/api/v1/accounts/${tenant.accountId}/webhooks`;
    const headers = { 'content-type': 'application/json' };
    expect((await t.api('POST', path, { raw: '{not json', headers })).status).toBe(401);
    expect((await t.api('POST', path, { raw: 'x'.repeat(4096), headers })).status).toBe(401);
    expect((await t.api('POST', path, { key: tenant.apiKey, raw: '{not json', headers })).status).toBe(400);
    expect((await t.api('POST', path, { key: tenant.apiKey, raw: JSON.stringify({ url: 'x'.repeat(4096) }), headers })).status).toBe(413);
  });
});
