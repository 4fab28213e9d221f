// media/get against a nock-faked WeChat API: the file with its type, errcodes as WechatApiError,
// a video's video_url, and the size cap applied while reading.
import { Readable } from 'node:stream';
import nock from 'nock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WechatApiError } from '../../adapters/wechat/wechatApi.ts';
import { downloadWechatMedia, WechatMediaRefusedError } from '../../adapters/wechat/wechatMedia.ts';

const api = 'https://api.weixin.qq.com';
const mediaGet = (mediaId: string) => nock(api).get('/cgi-bin/media/get').query({ access_token: 'tok-1', media_id: mediaId });

describe('downloadWechatMedia', () => {
  beforeAll(() => { nock.disableNetConnect(); });
  afterEach(() => {
    const pending = nock.pendingMocks();
    nock.cleanAll();
    expect(pending).toEqual([]);
  });

  it('answers the file and the content type WeChat labels it with', async () => {
    const bytes = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16]);
    mediaGet('m1').reply(200, bytes, { 'content-type': 'image/jpeg', 'content-disposition': 'attachment; filename="m1.jpg"' });
    expect(await downloadWechatMedia(api, 'tok-1', 'm1', 1024)).toEqual({ kind: 'file', bytes, contentType: 'image/jpeg' });
  });

  it('turns a JSON errcode (HTTP 200) into WechatApiError, whatever the content type says', async () => {
    mediaGet('gone').reply(200, JSON.stringify({ errcode: 40007, errmsg: 'invalid media_id' }), { 'content-type': 'text/plain' });
    const error = await downloadWechatMedia(api, 'tok-1', 'gone', 1024).catch((e: Error) => e);
    expect(error).toBeInstanceOf(WechatApiError);
    expect((error as WechatApiError).errcode).toBe(40007);
    expect((error as Error).message).not.toContain('tok-1');
  });

  it("answers a video medium's video_url", async () => {
    mediaGet('v1').reply(200, { video_url: 'http://mmbiz.example/v1.mp4' });
    expect(await downloadWechatMedia(api, 'tok-1', 'v1', 1024)).toEqual({ kind: 'videoUrl', url: 'http://mmbiz.example/v1.mp4' });
  });

  it('refuses a file over the limit, by its length or while reading it', async () => {
    mediaGet('big').reply(200, Buffer.alloc(2048), { 'content-type': 'video/mp4' });
    await expect(downloadWechatMedia(api, 'tok-1', 'big', 1024)).rejects.toBeInstanceOf(WechatMediaRefusedError);
    // Streamed without a length: the cap is applied chunk by chunk.
    mediaGet('big2').reply(200, () => Readable.from([Buffer.alloc(600), Buffer.alloc(600)]), { 'content-type': 'video/mp4' });
    await expect(downloadWechatMedia(api, 'tok-1', 'big2', 1024)).rejects.toBeInstanceOf(WechatMediaRefusedError);
  });

  it('refuses an API base with a query or fragment, which would point the call elsewhere', async () => {
    await expect(downloadWechatMedia('http://internal.example/secret#', 'tok-1', 'm1', 1024)).rejects.toBeInstanceOf(WechatMediaRefusedError);
  });

  it('never puts the token in a network error', async () => {
    mediaGet('m2').replyWithError({ code: 'ECONNRESET' });
    const error = await downloadWechatMedia(api, 'tok-1', 'm2', 1024).catch((e: Error) => e);
    expect((error as Error).message).toMatch(/could not be reached/);
    expect((error as Error).message).not.toContain('tok-1');
  });
});
