// WeChat access_tokens: one per official account for every gateway process, cached in Redis with
// WeChat's expiry. Fetching a new token retires the old one after 5 minutes and the daily quota is
// low, so only the process holding the Redis lock fetches (ahead of expiry); the others keep using
// the cached token meanwhile, or wait for the new one when there is none.
import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { WechatCredentials, WechatTokenSource } from '../../adapters/wechat/wechatAdapter.ts';
import { requestWechatAccessToken, wechatApiBase, wechatHttpTimeoutMs, wechatTokenMode } from '../../adapters/wechat/wechatApi.ts';
import type { InboxRecord } from '../inboxes/inboxDirectory.ts';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';

export interface WechatAccessTokenOptions {
  /** Refresh when less than this is left (default 5 min). */
  refreshAheadMs?: number;
  /** A token closer to its end than this is never handed out: it could lapse in flight (default 30 s). */
  minimumRemainingMs?: number;
  /** How long a process waits for another one's fetch before giving up (default: the lock's lifetime + 5 s). */
  waitMs?: number;
  /** The fetch lock's lifetime, past the HTTP timeout; a failed refresh holds it this long (default 15 s). */
  lockMs?: number;
  pollMs?: number;
  httpTimeoutMs?: number;
  log?: Logger;
}

// Compare-and-delete: releases a lock only by its owner, drops a token only while it is the cached one.
const deleteIfEquals = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

interface CachedToken { token: string; remainingMs: number }

export class WechatAccessTokens implements WechatTokenSource {
  private readonly refreshAheadMs: number;
  private readonly minimumRemainingMs: number;
  private readonly waitMs: number;
  private readonly lockMs: number;
  private readonly pollMs: number;
  private readonly httpTimeoutMs: number;
  /** Callers in this process that need a fetch share one attempt instead of each polling Redis. */
  private readonly pending = new Map<string, Promise<string>>();

  constructor(private readonly redis: Redis, private readonly keys: Keyspace, private readonly options: WechatAccessTokenOptions = {}) {
    this.refreshAheadMs = options.refreshAheadMs ?? 5 * 60_000;
    this.minimumRemainingMs = options.minimumRemainingMs ?? 30_000;
    this.httpTimeoutMs = options.httpTimeoutMs ?? wechatHttpTimeoutMs;
    this.lockMs = options.lockMs ?? this.httpTimeoutMs + 5_000;
    // Past the lock's lifetime, so a process that died holding it delays the others but never fails them.
    this.waitMs = options.waitMs ?? this.lockMs + 5_000;
    this.pollMs = options.pollMs ?? 50;
  }

  /**
   * The cache key: the appId and a fingerprint of its secret, so an inbox naming someone else's
   * appId with a wrong secret never receives their token.
   */
  tokenKey(credentials: Pick<WechatCredentials, 'appId' | 'appSecret'>): string {
    const fingerprint = createHash('sha256').update(`${credentials.appId}\n${credentials.appSecret}`).digest('hex').slice(0, 16);
    return this.keys.wechatToken(credentials.appId, fingerprint);
  }

  async getToken(inbox: InboxRecord, credentials: WechatCredentials): Promise<string> {
    const key = this.tokenKey(credentials);
    const cached = await this.read(key);
    if (cached && cached.remainingMs > this.refreshAheadMs) return cached.token;
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.obtain(key, inbox, credentials).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    return pending;
  }

  async invalidate(_inbox: InboxRecord, credentials: WechatCredentials, badToken: string): Promise<void> {
    await this.redis.eval(deleteIfEquals, 1, this.tokenKey(credentials), badToken);
  }

  private async read(key: string): Promise<CachedToken | undefined> {
    const answers = await this.redis.multi().get(key).pttl(key).exec();
    const token = answers?.[0]?.[1] as string | null | undefined;
    const remainingMs = answers?.[1]?.[1] as number | undefined;
    if (!token || remainingMs === undefined || remainingMs <= 0) return undefined;
    return { token, remainingMs };
  }

  private async obtain(key: string, inbox: InboxRecord, credentials: WechatCredentials): Promise<string> {
    const lockKey = `${key}:lock`;
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const cached = await this.read(key);
      if (cached && cached.remainingMs > this.refreshAheadMs) return cached.token;
      const owner = randomUUID();
      if ((await this.redis.set(lockKey, owner, 'PX', this.lockMs, 'NX')) === 'OK') {
        return this.fetchUnderLock(key, lockKey, owner, inbox, credentials);
      }
      // Another process is fetching: the current token serves meanwhile.
      if (cached && cached.remainingMs > this.minimumRemainingMs) return cached.token;
      if (Date.now() > deadline) {
        throw new Error(`no WeChat access_token for appId ${credentials.appId}: another process has been fetching it for over ${Math.round(this.waitMs / 1000)} s`);
      }
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
    }
  }

  private async fetchUnderLock(key: string, lockKey: string, owner: string, inbox: InboxRecord, credentials: WechatCredentials): Promise<string> {
    let holdLock = false;
    try {
      // The lock may have been freed just after a fetch: the token is then already fresh.
      const cached = await this.read(key);
      if (cached && cached.remainingMs > this.refreshAheadMs) return cached.token;
      const started = Date.now();
      let fetched;
      try {
        fetched = await requestWechatAccessToken(wechatApiBase(inbox.settings), {
          appId: credentials.appId, appSecret: credentials.appSecret, mode: wechatTokenMode(inbox.settings),
        }, this.httpTimeoutMs);
      } catch (error) {
        if (!cached || cached.remainingMs <= this.minimumRemainingMs) throw error;
        // A refresh ahead of time failed: the current token still serves, and the lock, left to lapse,
        // keeps every process from asking WeChat again at once.
        holdLock = true;
        this.options.log?.warn({ appId: credentials.appId, inboxId: inbox.id, err: (error as Error).message }, 'wechat access_token refresh failed; the current token serves meanwhile');
        return cached.token;
      }
      // Counted from before the request: WeChat's clock started no later than that.
      const ttlMs = fetched.expiresInSeconds * 1000 - (Date.now() - started);
      await this.redis.set(key, fetched.accessToken, 'PX', Math.max(ttlMs, 1000));
      return fetched.accessToken;
    } finally {
      if (!holdLock) await this.redis.eval(deleteIfEquals, 1, lockKey, owner);
    }
  }
}
