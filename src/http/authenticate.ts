// Who is calling: the platform key, an account's API key, or an agent's token (Authorization: Bearer).
// A caller that may not see an account gets 404 for it, never a hint that it exists.
import type { Context, Next } from 'koa';
import type { Redis } from 'ioredis';
import { hashSecret, safeEqual } from '../crypto/tokens.ts';
import type { Keyspace } from '../redis/keys.ts';
import type { AccountDirectory } from '../tenancy/accounts.ts';
import type { AgentDirectory, AgentRecord } from '../tenancy/agents.ts';
import type { AuthLevel } from './apiRoutes.ts';
import { HttpError, notFound } from './errors.ts';

export type Caller =
  | { kind: 'platform' }
  | { kind: 'account'; accountId: string }
  | { kind: 'agent'; accountId: string; agent: AgentRecord };

declare module 'koa' {
  interface DefaultState { caller?: Caller }
}

const unauthorized = () => new HttpError(401, 'unauthorized', 'a valid API key is required (Authorization: Bearer …)');

export class Authenticator {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly accounts: AccountDirectory,
    private readonly agents: AgentDirectory,
    private readonly adminKey: string | undefined,
  ) {}

  async identify(token: string | undefined): Promise<Caller | undefined> {
    if (!token || token.length > 200) return undefined;
    if (this.adminKey && safeEqual(token, this.adminKey)) return { kind: 'platform' };
    // A generated platform key is gwp_…: only such a token costs the Redis read of its hash.
    if (!this.adminKey && token.startsWith('gwp_')) {
      return (await this.redis.get(this.keys.platformKeyHash)) === hashSecret(token) ? { kind: 'platform' } : undefined;
    }
    if (token.startsWith('gwk_')) {
      const accountId = await this.accounts.accountForKey(token);
      return accountId ? { kind: 'account', accountId } : undefined;
    }
    if (token.startsWith('gwa_')) {
      const agent = await this.agents.agentForToken(token);
      return agent ? { kind: 'agent', accountId: agent.accountId, agent } : undefined;
    }
    return undefined;
  }

  static bearer(header: string | undefined): string | undefined {
    const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    return match?.[1];
  }

  middleware = (level: AuthLevel) => async (ctx: Context, next: Next) => {
    if (level === 'none' || level === 'provider' || level === 'visitor') return next();
    const caller = await this.identify(Authenticator.bearer(ctx.get('authorization')));
    if (!caller) throw unauthorized();
    if (level === 'platform') {
      if (caller.kind !== 'platform') throw new HttpError(403, 'forbidden', 'this route needs the platform key');
    } else if (level === 'agent') {
      if (caller.kind !== 'agent') throw new HttpError(403, 'forbidden', 'this route needs an agent token');
    } else {
      const accountId = ctx.params.accountId as string | undefined;
      if (accountId === undefined) throw notFound();
      if (caller.kind !== 'platform' && caller.accountId !== accountId) throw notFound('account');
      if (caller.kind === 'agent' && level === 'accountOrSupervisor' && caller.agent.role !== 'supervisor') {
        throw new HttpError(403, 'forbidden', 'this route needs an account API key or a supervisor');
      }
      if (caller.kind === 'agent' && level === 'account') throw new HttpError(403, 'forbidden', 'this route needs an account API key');
      const account = await this.accounts.get(accountId);
      if (!account) throw notFound('account');
      if (account.status === 'disabled' && caller.kind !== 'platform') throw new HttpError(403, 'account_disabled', 'this account is disabled');
    }
    ctx.state.caller = caller;
    return next();
  };
}
