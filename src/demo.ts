// The demo: created once on a fresh gateway (an account, a web chat inbox, an agent) so that
// `npm start` alone shows the product working. Its page embeds the real widget.
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiRegistry } from './http/apiRoutes.ts';
import { notFound } from './http/errors.ts';
import type { ApiServices } from './api/services.ts';

export interface DemoInfo { accountId: string; inboxId: string; agentId: string; agentToken: string; apiKey: string }

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function demoPage(publicUrl: string, inboxId: string, title: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:.1rem .3rem}</style>
</head><body>
<h1>${escapeHtml(title)}</h1>
<p>This page embeds the gateway's web chat widget with one line:</p>
<p><code>&lt;script src="${escapeHtml(publicUrl)}/webchat/${escapeHtml(inboxId)}/widget.js" async&gt;&lt;/script&gt;</code></p>
<p>Open the chat at the bottom right and write, then answer from the <a href="${escapeHtml(publicUrl)}/agent">agent console</a> (with the agent token <code>npm start</code> printed).</p>
<script src="${escapeHtml(publicUrl)}/webchat/${escapeHtml(inboxId)}/widget.js" async data-title="${escapeHtml(title)}"></script>
</body></html>`;
}

export function registerDemoRoutes(api: ApiRegistry, s: ApiServices, publicUrl: string): void {
  api.add({
    method: 'get', path: '/demo/:inboxId', tag: 'Web chat', auth: 'none', produces: 'text/html',
    summary: 'A demo page embedding the widget of a web chat inbox',
    handler: async (ctx, { params }) => {
      const inbox = await s.inboxes.records.getAnyAccount(params.inboxId!);
      if (!inbox || inbox.type !== 'webchat') throw notFound('inbox');
      ctx.type = 'text/html; charset=utf-8';
      // The page is served by the gateway itself, so the widget loads from the same origin.
      // (Koa 3's ctx.origin is the Origin request header, absent on a navigation: use protocol + host.)
      ctx.body = demoPage(ctx.host ? `${ctx.protocol}://${ctx.host}` : publicUrl, inbox.id, `${inbox.name} (demo)`);
    },
  });
}

/** Creates the demo once (guarded in Redis) and keeps its secrets in the data folder, readable by us only. */
export async function ensureDemo(s: ApiServices, dataDir: string): Promise<DemoInfo | undefined> {
  const file = join(dataDir, 'demo.json');
  const created = await s.redis.set(s.keys.bootstrap('demo'), new Date().toISOString(), 'NX');
  if (!created) return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DemoInfo) : undefined;
  const account = await s.accounts.create({ name: 'Demo shop' });
  const { key } = await s.accounts.issueKey(account.id, 'demo');
  const inbox = await s.inboxes.create(account.id, {
    type: 'webchat', name: 'Demo web chat', settings: { allowedOrigins: ['*'] }, credentials: {},
  });
  const { agent, token } = await s.agents.create(account.id, { name: 'Demo agent', role: 'supervisor', capacity: 5 });
  await s.agents.setPresence(agent, { status: 'online' });
  const info: DemoInfo = { accountId: account.id, inboxId: inbox.id, agentId: agent.id, agentToken: token, apiKey: key };
  writeFileSync(file, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return info;
}
