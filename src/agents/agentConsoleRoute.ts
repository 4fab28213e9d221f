// GET /agent: a one-file console so a person can answer chats from a browser. The page speaks the
// same agent socket and REST API as any integration; the server only hands out the static file.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ApiRegistry } from '../http/apiRoutes.ts';

const pagePath = new URL('./console/agentConsole.html', import.meta.url);
const hostPattern = /^[A-Za-z0-9.:[\]-]{1,255}$/;

/** The page runs only its own inline script and style (by hash) and talks only to this origin. */
function inlineHashes(html: string, tag: 'script' | 'style'): string {
  return [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))]
    .map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`)
    .join(' ');
}

export function registerAgentConsoleRoute(registry: ApiRegistry): void {
  let page: { html: string; scripts: string; styles: string } | undefined;
  registry.add({
    method: 'get', path: '/agent', tag: 'Agents', auth: 'none', produces: 'text/html',
    summary: 'A minimal agent console (paste the agent token, or open /agent?token=…)',
    handler: async (ctx) => {
      if (!page) {
        const html = readFileSync(pagePath, 'utf8');
        page = { html, scripts: inlineHashes(html, 'script'), styles: inlineHashes(html, 'style') };
      }
      // 'self' covers ws: in current browsers; the explicit socket origins are for older ones.
      const sockets = hostPattern.test(ctx.host) ? ` ws://${ctx.host} wss://${ctx.host}` : '';
      ctx.set('content-security-policy', [
        "default-src 'none'", `script-src ${page.scripts}`, `style-src ${page.styles}`, `connect-src 'self'${sockets}`,
        "img-src 'self' data:", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
      ].join('; '));
      ctx.set('referrer-policy', 'no-referrer');
      ctx.set('x-content-type-options', 'nosniff');
      ctx.set('cache-control', 'no-store');
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = page.html;
    },
  });
}
