// The entry point: settings → Redis (embedded when REDIS_URL is unset) → secrets → gateway → signals.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadSettings, SettingsError, type Settings } from '../config/settings.ts';
import { generateSecret, hashSecret } from './crypto/tokens.ts';
import { applyDeclaredAccounts } from './declaredAccounts.ts';
import { ensureDemo } from './demo.ts';
import { createGateway } from './gateway.ts';
import { createLogger } from './logger.ts';
import { RedisNotInstalledError, startEmbeddedRedis, type EmbeddedRedis } from './redis/embeddedRedis.ts';

function readOrCreateSecret(file: string, make: () => string): { value: string; created: boolean } {
  if (existsSync(file)) return { value: readFileSync(file, 'utf8').trim(), created: false };
  const value = make();
  writeFileSync(file, value + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return { value, created: true };
}

async function main(): Promise<void> {
  let settings: Settings;
  try {
    settings = loadSettings();
  } catch (error) {
    if (error instanceof SettingsError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(settings.logLevel);
  const dataDir = resolve(settings.dataDir);
  mkdirSync(dataDir, { recursive: true });

  let embedded: EmbeddedRedis | undefined;
  let redisUrl = settings.redisUrl;
  if (!redisUrl) {
    try {
      embedded = await startEmbeddedRedis({ dataDir: join(dataDir, 'redis'), log: (line) => log.info(line) });
    } catch (error) {
      console.error(error instanceof RedisNotInstalledError ? error.message : `Could not start redis-server: ${(error as Error).message}`);
      process.exit(3);
    }
    redisUrl = embedded.url;
    log.info({ redis: redisUrl, dataDir: join(dataDir, 'redis') }, 'embedded redis-server started (set REDIS_URL to use your own)');
  }

  // Without GATEWAY_SECRET_KEY, a key is generated once and kept in the data folder.
  const secretKey = settings.secretKey ??
    readOrCreateSecret(join(dataDir, 'secret-key'), () => randomBytes(32).toString('base64')).value;
  if (!settings.secretKey) log.warn({ file: join(dataDir, 'secret-key') }, 'GATEWAY_SECRET_KEY is unset: using a generated key kept in the data folder');

  const gateway = await createGateway({ settings, redisUrl, secretKey, log });
  let platformKeyNote = 'the platform key is GATEWAY_ADMIN_KEY';
  if (!settings.adminKey) {
    const keyFile = join(dataDir, 'platform-key');
    const stored = await gateway.redis.get(gateway.keys.platformKeyHash);
    if (!stored) {
      const key = generateSecret('gwp_');
      await gateway.redis.set(gateway.keys.platformKeyHash, hashSecret(key), 'NX');
      writeFileSync(keyFile, key + '\n', { mode: 0o600 });
      chmodSync(keyFile, 0o600);
      console.log(`\nPlatform key (shown once, also saved to ${keyFile}):\n  ${key}\n`);
    }
    platformKeyNote = `the platform key is in ${keyFile} (or set GATEWAY_ADMIN_KEY)`;
  }
  await applyDeclaredAccounts(settings, gateway.services, log);
  await gateway.start();

  const wantsDemo = settings.demo === 'on' || (settings.demo === 'auto' && settings.accounts.length === 0);
  if (wantsDemo && gateway.role !== 'worker') {
    const demo = await ensureDemo(gateway.services, dataDir);
    if (demo) {
      const base = gateway.publicUrl;
      console.log([
        '',
        'Demo ready:',
        `  demo page      ${base}/demo/${demo.inboxId}`,
        `  agent console  ${base}/agent`,
        `  agent token    ${demo.agentToken}`,
        `  agent socket   ${base.replace(/^http/, 'ws')}/api/v1/agent/ws?token=<agent token>`,
        `  account        ${demo.accountId} (API key in ${join(dataDir, 'demo.json')})`,
        `  platform key   ${platformKeyNote}`,
        `  API            ${base}/openapi.json`,
        '',
      ].join('\n'));
    }
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => { log.error('shutdown took too long; exiting'); process.exit(1); }, 30_000);
    force.unref();
    await gateway.stop();
    await embedded?.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error) => {
  console.error('The gateway failed to start:', (error as Error).message);
  process.exit(1);
});
