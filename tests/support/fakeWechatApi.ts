// Just enough of api.weixin.qq.com for outbound tests (the inbox's apiBaseUrl points here):
// access tokens it issued are valid until the test expires them; custom/send records what it got.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CustomSend { accessToken: string; body: any }

/** Just enough of api.weixin.qq.com: tokens it issued are valid until expired by the test. */
export async function startFakeWechat(appId: string, appSecret: string) {
  const tokenRequests: URLSearchParams[] = [];
  const sends: CustomSend[] = [];
  const valid = new Set<string>();
  let sendAnswer: () => object = () => ({ errcode: 0, errmsg: 'ok' });
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const json = (answer: object) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(answer)); };
    if (req.method === 'GET' && url.pathname === '/cgi-bin/token') {
      tokenRequests.push(url.searchParams);
      if (url.searchParams.get('appid') !== appId || url.searchParams.get('secret') !== appSecret) return json({ errcode: 40125, errmsg: 'invalid appsecret' });
      const token = `ACCESS_${randomBytes(8).toString('hex')}`;
      valid.add(token);
      return json({ access_token: token, expires_in: 7200 });
    }
    if (req.method === 'POST' && url.pathname === '/cgi-bin/message/custom/send') {
      const accessToken = url.searchParams.get('access_token') ?? '';
      if (!valid.has(accessToken)) return json({ errcode: 42001, errmsg: 'access_token expired' });
      const answer = sendAnswer();
      if ((answer as { errcode: number }).errcode === 0) sends.push({ accessToken, body: JSON.parse(raw) });
      return json(answer);
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tokenRequests, sends, valid,
    /** Every issued token lapses, as after two hours (WeChat says 42001). */
    expireTokens() { valid.clear(); },
    answerSendsWith(next: () => object) { sendAnswer = next; },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
