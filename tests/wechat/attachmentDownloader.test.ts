// Fetching an agent's attachment by URL for upload: private addresses refused by default, redirects
// followed hop by hop, the size capped while reading, and failures either permanent or retried.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentSendError } from '../../adapters/channelAdapter.ts';
import { AttachmentDownloader } from '../../src/wechat/attachmentDownloader.ts';

describe('attachment downloads for channel uploads', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (path === '/photo.jpg') { res.setHeader('content-type', 'image/jpeg'); return res.end(Buffer.alloc(2048, 1)); }
      if (path === '/moved') { res.statusCode = 302; res.setHeader('location', '/photo.jpg'); return res.end(); }
      if (path === '/loop') { res.statusCode = 302; res.setHeader('location', '/loop'); return res.end(); }
      if (path === '/big-chunked') {
        // No content-length: the cap must hold while streaming.
        res.setHeader('content-type', 'image/jpeg');
        for (let i = 0; i < 10; i++) res.write(Buffer.alloc(1024, 2));
        return res.end();
      }
      if (path === '/broken') { res.statusCode = 503; return res.end(); }
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const attachment = (url: string) => ({ url, contentType: 'image/jpeg' });
  const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (e: Error) => e);

  it('refuses a loopback or private URL by default, permanently', async () => {
    for (const url of [`${base}/photo.jpg`, 'http://169.254.169.254/latest/meta-data', 'http://localhost/x', 'file:///etc/passwd']) {
      const error = await failure(new AttachmentDownloader().load(attachment(url), 1 << 20));
      expect(error, url).toBeInstanceOf(PermanentSendError);
      expect((error as PermanentSendError).code, url).toBe('attachment_refused');
    }
  });

  it('reads the file, following a redirect, when private targets are allowed', async () => {
    const downloader = new AttachmentDownloader({ allowPrivate: true });
    const direct = await downloader.load(attachment(`${base}/photo.jpg`), 1 << 20);
    expect(direct.bytes.byteLength).toBe(2048);
    expect(direct.contentType).toBe('image/jpeg');
    expect((await downloader.load(attachment(`${base}/moved?sig=secret-query`), 1 << 20)).bytes.byteLength).toBe(2048);
  });

  it('caps the size, refuses missing files and endless redirects, and leaves server errors to a retry', async () => {
    const downloader = new AttachmentDownloader({ allowPrivate: true });
    expect(await failure(downloader.load(attachment(`${base}/photo.jpg`), 1024))).toMatchObject({ code: 'attachment_too_large' });
    expect(await failure(downloader.load(attachment(`${base}/big-chunked`), 4096))).toMatchObject({ code: 'attachment_too_large' });
    const missing = await failure(downloader.load(attachment(`${base}/nothing?X-Amz-Signature=abc`), 1 << 20));
    expect(missing).toMatchObject({ code: 'attachment_unavailable', message: expect.stringMatching(/HTTP 404/) });
    expect((missing as Error).message).not.toContain('X-Amz-Signature');
    expect(await failure(downloader.load(attachment(`${base}/loop`), 1 << 20))).toMatchObject({ code: 'attachment_unavailable' });
    const broken = await failure(downloader.load(attachment(`${base}/broken`), 1 << 20));
    expect(broken).toBeInstanceOf(Error);
    expect(broken).not.toBeInstanceOf(PermanentSendError);
  });
});
