// Loads the named Lua scripts (name-KEYCOUNT.lua) with their includes and registers them on a connection.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';

const folder = dirname(fileURLToPath(import.meta.url));

export type ScriptName =
  | 'ingestInbound'
  | 'routeConversation'
  | 'resolveConversation'
  | 'reopenConversation'
  | 'assignToAgent'
  | 'transferToQueue'
  | 'respondToOffer'
  | 'takeFromQueue'
  | 'configureQueue'
  | 'updateAgentPresence'
  | 'removeAgent'
  | 'recordAgentActivity'
  | 'fireRoutingTimers'
  | 'createOutboundMessage'
  | 'updateMessageStatus'
  | 'purgeConversation'
  | 'updateContact'
  | 'recordPayment'
  | 'takeSmsSendSlot'
  | 'replaceSendMarker'
  | 'recordSmsOptOut'
  | 'enqueueDeliveries'
  | 'claimDeliveries'
  | 'settleDelivery'
  | 'redeliverDelivery'
  | 'updateWebhook'
  | 'rotateWebhookSecret'
  | 'holdLease'
  | 'releaseLease'
  | 'sendToContact'
  | 'upsertContact'
  | 'addConversationNote'
  | 'tagConversation'
  | 'advanceImapCursor'
  | 'leaseAgentSocket';

interface LoadedScript { lua: string; numberOfKeys: number }

function withIncludes(source: string): string {
  return source.replace(/^--- @include "([A-Za-z]+)"$/gm, (_line, name: string) =>
    readFileSync(join(folder, 'includes', `${name}.lua`), 'utf8'),
  );
}

let cache: Map<string, LoadedScript> | undefined;

function loadScripts(): Map<string, LoadedScript> {
  if (cache) return cache;
  cache = new Map();
  for (const file of readdirSync(folder)) {
    const match = /^([A-Za-z]+)-(\d+)\.lua$/.exec(file);
    if (!match) continue;
    cache.set(match[1]!, { lua: withIncludes(readFileSync(join(folder, file), 'utf8')), numberOfKeys: Number(match[2]) });
  }
  return cache;
}

const registered = new WeakSet<Redis>();

/** Runs a named script (EVALSHA, loading it on first use) with its keys and arguments. */
export async function runScript(redis: Redis, name: ScriptName, keys: string[], args: (string | number)[]): Promise<unknown[]> {
  if (!registered.has(redis)) {
    for (const [scriptName, script] of loadScripts()) redis.defineCommand(scriptName, script);
    registered.add(redis);
  }
  const script = loadScripts().get(name);
  if (!script) throw new Error(`unknown script ${name}`);
  if (keys.length !== script.numberOfKeys) throw new Error(`${name} takes ${script.numberOfKeys} keys, got ${keys.length}`);
  const command = (redis as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown[]>>)[name]!;
  return command.call(redis, ...keys, ...args);
}
