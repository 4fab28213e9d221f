// /api/v1/accounts (platform key) and an account's API keys.
import { z } from 'zod';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import { notFound } from '../http/errors.ts';
import { accountSchema, apiKeySchema } from '../tenancy/accounts.ts';
import { pageOf, pageQuery } from './pagination.ts';
import type { ApiServices } from './services.ts';

const createAccount = z.object({
  name: z.string().trim().min(1).max(200),
  id: z.string().regex(/^[A-Za-z0-9_-]{3,64}$/).optional().describe('choose the id (for declarative setups)'),
});
const issuedKey = z.object({ key: z.string().describe('shown once: store it now'), apiKey: apiKeySchema });

export function registerAccountRoutes(api: ApiRegistry, s: ApiServices): void {
  api.add({
    method: 'post', path: '/api/v1/accounts', tag: 'Accounts', auth: 'platform', body: createAccount, successStatus: 201,
    summary: 'Create an account (tenant); the answer carries its first API key, shown once',
    response: z.object({ account: accountSchema, key: z.string(), apiKey: apiKeySchema }),
    handler: async (ctx, { body }) => {
      if (body.id && (await s.accounts.get(body.id))) { ctx.status = 409; ctx.body = { error: { code: 'conflict', message: 'an account with this id exists' } }; return undefined; }
      const account = await s.accounts.create(body);
      const { key, record } = await s.accounts.issueKey(account.id, 'default');
      return { account, key, apiKey: record };
    },
  });
  api.add({
    method: 'get', path: '/api/v1/accounts', tag: 'Accounts', auth: 'platform', query: pageQuery, response: pageOf(accountSchema),
    summary: 'List accounts',
    handler: async (_ctx, { query }) => s.accounts.list(query),
  });
  api.add({
    method: 'get', path: '/api/v1/accounts/:accountId', tag: 'Accounts', auth: 'account', response: accountSchema,
    summary: 'Get an account',
    handler: async (_ctx, { params }) => (await s.accounts.get(params.accountId!)) ?? Promise.reject(notFound('account')),
  });
  api.add({
    method: 'patch', path: '/api/v1/accounts/:accountId', tag: 'Accounts', auth: 'platform',
    body: z.object({ name: z.string().trim().min(1).max(200).optional(), status: z.enum(['active', 'disabled']).optional() }),
    response: accountSchema, summary: 'Rename, disable or enable an account',
    handler: async (_ctx, { params, body }) => {
      const account = await s.accounts.get(params.accountId!);
      if (!account) throw notFound('account');
      return s.accounts.update({ ...account, ...body, updatedAt: new Date().toISOString() });
    },
  });
  api.add({
    method: 'post', path: '/api/v1/accounts/:accountId/keys', tag: 'Accounts', auth: 'account', successStatus: 201,
    body: z.object({ name: z.string().trim().min(1).max(100).default('api key') }), response: issuedKey,
    summary: 'Issue another API key for the account (shown once)',
    handler: async (_ctx, { params, body }) => {
      const { key, record } = await s.accounts.issueKey(params.accountId!, body.name);
      return { key, apiKey: record };
    },
  });
  api.add({
    method: 'get', path: '/api/v1/accounts/:accountId/keys', tag: 'Accounts', auth: 'account', query: pageQuery,
    response: pageOf(apiKeySchema), summary: "List the account's API keys (never their secrets)",
    handler: async (_ctx, { params, query }) => s.accounts.keys.list(params.accountId!, query),
  });
  api.add({
    method: 'delete', path: '/api/v1/accounts/:accountId/keys/:keyId', tag: 'Accounts', auth: 'account',
    summary: 'Revoke an API key',
    handler: async (_ctx, { params }) => {
      if (!(await s.accounts.revokeKey(params.accountId!, params.keyId!))) throw notFound('key');
      return undefined;
    },
  });
}
