// The HTTP side: koa middleware that reads top to bottom, and WebSocket upgrades by path.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import Router from '@koa/router';
import Koa from 'koa';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { ApiRegistry } from './apiRoutes.ts';
import type { Authenticator } from './authenticate.ts';
import { bodyMiddleware } from './body.ts';
import { errorMiddleware } from './errors.ts';
import type { PushLane } from './pushLane.ts';

export interface UpgradeRoute {
  pattern: RegExp;
  /** Resolves to a handler for the socket, or throws an HttpError to refuse the upgrade. */
  accept(request: IncomingMessage, match: RegExpExecArray): Promise<(socket: WebSocket) => void | Promise<void>>;
}

export function createHttpApp(deps: { registry: ApiRegistry; auth: Authenticator; log: Logger; metrics: Metrics; bodyLimitBytes: number }): Koa {
  const app = new Koa({ proxy: true });
  // The business API holds most routes; provider pushes and visitor calls (the busy paths) are matched
  // against their own few instead of all of them.
  const apiRouter = new Router();
  const edgeRouter = new Router();
  const isApi = (path: string) => path.startsWith('/api/');
  // Each route authenticates first, then reads its body: an unknown caller never makes us read one.
  deps.registry.mount((path) => (isApi(path) ? apiRouter : edgeRouter), deps.auth.middleware, bodyMiddleware(deps.bodyLimitBytes));
  const routes = { api: apiRouter.routes() as Koa.Middleware, edge: edgeRouter.routes() as Koa.Middleware };
  const allowedMethods = {
    api: apiRouter.allowedMethods({ throw: false }) as Koa.Middleware, edge: edgeRouter.allowedMethods({ throw: false }) as Koa.Middleware,
  };

  app.use(async function measure(ctx, next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      deps.metrics.httpRequests.inc({ method: ctx.method, route, status: String(ctx.status) });
      deps.metrics.httpDuration.observe({ method: ctx.method, route }, (performance.now() - started) / 1000);
    }
  });
  app.use(errorMiddleware(deps.log));
  app.use((ctx, next) => routes[isApi(ctx.path) ? 'api' : 'edge'](ctx, next));
  app.use((ctx, next) => allowedMethods[isApi(ctx.path) ? 'api' : 'edge'](ctx, next));
  app.use(async function notFoundFallback(ctx) {
    if (ctx.status !== 404 || ctx.body !== undefined) return;
    // Set explicitly: koa turns an implicit 404 into a 200 once a body is set.
    ctx.status = 404;
    ctx.body = { error: { code: 'not_found', message: 'no such route' } };
  });
  // koa logs errors itself unless told otherwise; ours are already answered and logged.
  app.silent = true;
  return app;
}

/** The server: pushes on the push lane (when given), every other request through koa, upgrades by path. */
export function createHttpServer(app: Koa, upgrades: UpgradeRoute[], wsMaxFrameBytes: number, log: Logger, pushLane?: PushLane) {
  const koaListener = app.callback();
  const server: Server = createServer(pushLane ? (req, res) => { if (!pushLane(req, res)) void koaListener(req, res); } : koaListener);
  const wss = new WebSocketServer({ noServer: true, maxPayload: wsMaxFrameBytes });
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (request.url ?? '/').split('?')[0]!;
    const refuse = (status: number, text: string) => {
      socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n` +
        JSON.stringify({ error: { code: text.toLowerCase().replace(/ /g, '_'), message: text } }));
      socket.destroy();
    };
    socket.on('error', () => socket.destroy());
    for (const route of upgrades) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      route.accept(request, match).then(
        (handler) => wss.handleUpgrade(request, socket, head, (ws) => {
          ws.on('error', () => ws.terminate());
          Promise.resolve(handler(ws)).catch((error) => {
            log.error({ err: error }, 'socket handler failed');
            ws.close(1011, 'internal error');
          });
        }),
        (error: { status?: number; message?: string }) => {
          if (!error.status) log.error({ err: error }, 'upgrade failed');
          refuse(error.status ?? 500, error.status === 401 ? 'Unauthorized' : error.status === 404 ? 'Not Found' : error.status === 403 ? 'Forbidden' : 'Internal Server Error');
        },
      );
      return;
    }
    refuse(404, 'Not Found');
  });
  return { server, wss };
}
