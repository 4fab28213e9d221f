// WeChat temporary media by media_id (`cgi-bin/media/get`): the file itself, or for video media a
// JSON `{video_url}` to download it from. Failures are JSON `{errcode, errmsg}` with HTTP 200. The
// URL carries the access_token, so no error built here contains it.
import { z } from 'zod';
import type { Dispatcher } from 'undici';
import { WechatApiError, wechatHttpTimeoutMs } from './wechatApi.ts';
import { connectRefusal } from '../../src/events/checkedDispatcher.ts';
import { readLimitedBody } from '../../src/http/readLimitedBody.ts';

export type WechatMediaDownload =
  | { kind: 'file'; bytes: Buffer; contentType: string }
  | { kind: 'videoUrl'; url: string };

/** Asking again will not help: the file is too large, or the API base cannot take a path. */
export class WechatMediaRefusedError extends Error {}

const jsonAnswer = z.object({
  errcode: z.number().int().optional(), errmsg: z.string().optional(), video_url: z.string().url().max(4096).optional(),
});

/** Downloads one medium, at most maxBytes, counted while reading; `dispatcher` decides where connections may go. */
export async function downloadWechatMedia(
  apiBase: string, token: string, mediaId: string, maxBytes: number, timeoutMs = wechatHttpTimeoutMs, dispatcher?: Dispatcher,
): Promise<WechatMediaDownload> {
  const what = 'media/get';
  const url = new URL(`${apiBase}/cgi-bin/media/get`);
  // A base with a query or fragment would send the request somewhere other than media/get.
  if (url.search || url.hash) throw new WechatMediaRefusedError(`${what}: the inbox apiBaseUrl must not carry a query or fragment`);
  url.searchParams.set('access_token', token);
  url.searchParams.set('media_id', mediaId);
  let response: Response;
  try {
    response = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(timeoutMs), dispatcher });
  } catch (error) {
    const refusal = connectRefusal(error);
    if (refusal) throw new WechatMediaRefusedError(`${what}: the inbox apiBaseUrl is refused: ${refusal.message}`);
    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') throw new Error(`${what}: WeChat did not answer within ${timeoutMs / 1000} s`);
    const code = ((error as { cause?: { code?: unknown } }).cause?.code as string | undefined) ?? name;
    throw new Error(`${what}: WeChat could not be reached (${code})`);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new Error(`${what}: WeChat answered HTTP ${response.status}`);
  }
  const bytes = await readLimitedBody(response, maxBytes, {
    tooLarge: () => new WechatMediaRefusedError(`${what}: the file is larger than ${Math.floor(maxBytes / (1024 * 1024))} MB`),
    unreadable: () => new Error(`${what}: the answer could not be read to the end`),
  });
  const contentType = (response.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  // Errors and video links come as JSON, labelled application/json or text/plain depending on the endpoint's mood.
  if (contentType === 'application/json' || contentType === 'text/plain' || contentType === '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const answer = jsonAnswer.safeParse(parsed);
    if (answer.success) {
      if (answer.data.errcode) throw new WechatApiError(answer.data.errcode, answer.data.errmsg ?? '', what);
      if (answer.data.video_url) return { kind: 'videoUrl', url: answer.data.video_url };
    }
    if (parsed !== undefined) throw new Error(`${what}: WeChat answered JSON with neither a file nor a video_url`);
  }
  return { kind: 'file', bytes, contentType };
}
