// Calls to the WeChat Official Account HTTP API: its base URL, the access_token request (plain and
// stable) and WeChat's answers, which are HTTP 200 with `{errcode, errmsg}` on failure. URLs carry the
// access_token or the AppSecret, so no error built here ever contains a URL.
import { Agent } from 'undici';
import { z } from 'zod';
import { connectTimeoutFor, maxConnectTimeoutMs } from '../../src/events/checkedDispatcher.ts';
import { requestNeverLeft } from '../channelAdapter.ts';

export const wechatDefaultApiBase = 'https://api.weixin.qq.com';
export const wechatHttpTimeoutMs = 10_000;
/**
 * Connects (DNS, TCP, TLS) fail on their own, well inside a call's timeout: a connect that hangs is then "never
 * left this host" (UND_ERR_CONNECT_TIMEOUT, retried), not a call timing out after its request may have gone.
 */
const wechatConnections = new Agent({ connect: { timeout: maxConnectTimeoutMs } });
const shorterConnections = new Map<number, Agent>();

/** The connection pool for calls of `timeoutMs`: its connects give up within half of that (at most 5 s). */
function connectionsFor(timeoutMs: number): Agent {
  const connectMs = connectTimeoutFor(timeoutMs);
  if (connectMs === maxConnectTimeoutMs) return wechatConnections;
  let agent = shorterConnections.get(connectMs);
  if (!agent) shorterConnections.set(connectMs, agent = new Agent({ connect: { timeout: connectMs } }));
  return agent;
}

export type WechatTokenMode = 'token' | 'stable_token';

/** The inbox's `apiBaseUrl` (a proxy with fixed egress IPs, a fake in tests) or WeChat's own. */
export function wechatApiBase(settings: Record<string, unknown>): string {
  const configured = typeof settings.apiBaseUrl === 'string' && settings.apiBaseUrl ? settings.apiBaseUrl : wechatDefaultApiBase;
  return configured.replace(/\/+$/, '');
}

export function wechatTokenMode(settings: Record<string, unknown>): WechatTokenMode {
  return settings.tokenMode === 'stable_token' ? 'stable_token' : 'token';
}

/** WeChat answered with a non-zero errcode. Retryable unless the caller decides otherwise. */
export class WechatApiError extends Error {
  constructor(readonly errcode: number, readonly errmsg: string, what: string) {
    super(`${what}: WeChat errcode ${errcode} (${errmsg.slice(0, 200)})`);
  }
}

/** The request may have reached WeChat, but no readable answer came back (a timeout, a dropped connection, a 5xx). */
export class WechatNoAnswerError extends Error {}

const errorAnswer = z.object({ errcode: z.number().int(), errmsg: z.string().optional() });

/**
 * One call to WeChat: a timeout, then the JSON answer, with a non-zero errcode thrown as
 * WechatApiError. `what` names the call in errors (which never show the URL).
 */
export async function callWechat(url: string, init: RequestInit, what: string, timeoutMs = wechatHttpTimeoutMs): Promise<Record<string, unknown>> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, { dispatcher: connectionsFor(timeoutMs), ...init, signal: AbortSignal.timeout(timeoutMs) } as RequestInit);
    text = await response.text();
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') throw new WechatNoAnswerError(`${what}: WeChat did not answer within ${timeoutMs / 1000} s`);
    const e = error as { name?: string; code?: string; cause?: { code?: string } };
    const code = e.cause?.code ?? e.code ?? e.name;
    if (requestNeverLeft(error)) throw new Error(`${what}: WeChat could not be reached (${code})`);
    throw new WechatNoAnswerError(`${what}: the connection to WeChat failed before it answered (${code})`);
  }
  if (response.status >= 500) throw new WechatNoAnswerError(`${what}: WeChat answered HTTP ${response.status}`);
  if (!response.ok) throw new Error(`${what}: WeChat answered HTTP ${response.status}`);
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    throw new WechatNoAnswerError(`${what}: WeChat answered something that is not JSON (HTTP ${response.status})`);
  }
  if (!answer || typeof answer !== 'object' || Array.isArray(answer)) throw new WechatNoAnswerError(`${what}: WeChat answered something that is not a JSON object`);
  const failure = errorAnswer.safeParse(answer);
  if (failure.success && failure.data.errcode !== 0) throw new WechatApiError(failure.data.errcode, failure.data.errmsg ?? '', what);
  return answer as Record<string, unknown>;
}

const tokenAnswer = z.object({ access_token: z.string().min(1).max(2048), expires_in: z.number().int().positive() });

export interface WechatAccessToken { accessToken: string; expiresInSeconds: number }

/**
 * A new access_token from `cgi-bin/token` (GET) or `cgi-bin/stable_token` (POST). The stable form is
 * asked without force_refresh: it hands back the current token while it is valid.
 */
export async function requestWechatAccessToken(
  apiBase: string, account: { appId: string; appSecret: string; mode: WechatTokenMode }, timeoutMs = wechatHttpTimeoutMs,
): Promise<WechatAccessToken> {
  const what = `the access_token request for appId ${account.appId}`;
  const answer = account.mode === 'stable_token'
    ? await callWechat(`${apiBase}/cgi-bin/stable_token`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'client_credential', appid: account.appId, secret: account.appSecret, force_refresh: false }),
    }, what, timeoutMs)
    : await callWechat(`${apiBase}/cgi-bin/token?${new URLSearchParams({ grant_type: 'client_credential', appid: account.appId, secret: account.appSecret })}`,
      { method: 'GET' }, what, timeoutMs);
  const parsed = tokenAnswer.safeParse(answer);
  if (!parsed.success) throw new Error(`${what}: WeChat's answer has no access_token and expires_in`);
  return { accessToken: parsed.data.access_token, expiresInSeconds: parsed.data.expires_in };
}
