// The gateway's settings: defaults, the schema they must match, and how env and file combine.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();

export const roleSchema = z.enum(['web', 'worker', 'all']);
export type Role = z.infer<typeof roleSchema>;

export const declaredInboxSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{3,64}$/).optional(),
  type: z.string(),
  name: z.string().min(1).max(200),
  settings: z.record(z.string(), z.unknown()).default({}),
  credentials: z.record(z.string(), z.unknown()).default({}),
});

export const declaredAccountSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{3,64}$/),
  name: z.string().min(1).max(200),
  inboxes: z.array(declaredInboxSchema).default([]),
});

export const settingsSchema = z.object({
  port: port.default(3000),
  host: z.string().default('0.0.0.0'),
  redisUrl: z.string().regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL').optional(),
  publicUrl: z.string().url().optional(),
  adminKey: z.string().min(24, 'at least 24 characters').optional(),
  secretKey: z.string().min(32, 'at least 32 characters (e.g. `openssl rand -base64 32`)').optional(),
  configFile: z.string().optional(),
  dataDir: z.string().default('data'),
  redisPrefix: z.string().regex(/^[A-Za-z0-9{}_-]+$/, 'letters, digits, _ - { }').default('gw'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  bodyLimitBytes: positiveInt.default(1024 * 1024),
  wsMaxFrameBytes: positiveInt.default(64 * 1024),
  messageRetentionDays: positiveInt.default(30),
  workerConcurrency: positiveInt.max(512).default(64).describe('jobs a worker process runs at once, per queue: an inbound job mostly waits on Redis round trips, so more slots than cores keep the process busy'),
  webhookPrivateTargets: z.enum(['deny', 'allow']).default('allow').describe('whether webhooks may go to loopback and private addresses (on-premise CRMs live there); the gateway\'s own address is always refused'),
  providerPrivateTargets: z.enum(['deny', 'allow']).default('deny').describe('whether media the gateway fetches from tenant-set provider URLs (a WeChat inbox\'s apiBaseUrl, its video downloads, the attachment URLs of WeChat and email replies) may come from loopback and private addresses, whether an SMS inbox\'s apiBaseUrl may name one, and whether an email inbox\'s IMAP and SMTP hosts may resolve to one'),
  webhookTimeoutMs: positiveInt.max(120_000).default(10_000).describe('how long a webhook receiver may take to answer'),
  webhookRetryBaseMs: positiveInt.default(10_000).describe('the first retry delay; it doubles per attempt (with jitter)'),
  webhookRetryMaxMs: positiveInt.default(3_600_000).describe('the longest delay between two attempts'),
  webhookRetryHours: z.coerce.number().positive().default(24).describe('how long a delivery is retried before it is kept as failed'),
  webhookPauseAfterHours: z.coerce.number().positive().default(72).describe('a subscription whose every delivery failed for this long is paused'),
  webhookSubscriptionConcurrency: positiveInt.max(256).default(4).describe('deliveries in flight per subscription and worker process'),
  eventRetentionDays: z.coerce.number().positive().default(7).describe('how long the replay stream keeps events'),
  agentDisconnectGraceSeconds: z.coerce.number().int().min(0).max(3600).default(60).describe('an online agent with no open agent socket (closed, or its web process gone) for this long becomes away, and online again on its next socket; 0 = presence is only what is set'),
  agentDisconnectHandbackSeconds: z.coerce.number().int().min(0).max(86_400).default(300).describe('an agent away by disconnect for this long more hands its open conversations back to their queues, on to other agents; 0 = they stay with it'),
  jobLockMs: positiveInt.min(1000).default(30_000).describe('how long a job is held before a dead worker\'s job is taken over'),
  demo: z.enum(['auto', 'on', 'off']).default('auto'),
  role: roleSchema.default('all'),
  accounts: z.array(declaredAccountSchema).default([]),
});

export type Settings = z.infer<typeof settingsSchema>;

const envNames: Record<string, keyof Settings> = {
  PORT: 'port',
  HOST: 'host',
  REDIS_URL: 'redisUrl',
  PUBLIC_URL: 'publicUrl',
  GATEWAY_ADMIN_KEY: 'adminKey',
  GATEWAY_SECRET_KEY: 'secretKey',
  GATEWAY_CONFIG: 'configFile',
  GATEWAY_DATA_DIR: 'dataDir',
  GATEWAY_REDIS_PREFIX: 'redisPrefix',
  LOG_LEVEL: 'logLevel',
  GATEWAY_BODY_LIMIT: 'bodyLimitBytes',
  GATEWAY_WS_MAX_FRAME: 'wsMaxFrameBytes',
  GATEWAY_MESSAGE_RETENTION_DAYS: 'messageRetentionDays',
  GATEWAY_WORKER_CONCURRENCY: 'workerConcurrency',
  GATEWAY_JOB_LOCK_MS: 'jobLockMs',
  GATEWAY_AGENT_DISCONNECT_GRACE_SECONDS: 'agentDisconnectGraceSeconds',
  GATEWAY_AGENT_DISCONNECT_HANDBACK_SECONDS: 'agentDisconnectHandbackSeconds',
  GATEWAY_WEBHOOK_PRIVATE_TARGETS: 'webhookPrivateTargets',
  GATEWAY_PROVIDER_PRIVATE_TARGETS: 'providerPrivateTargets',
  GATEWAY_WEBHOOK_TIMEOUT_MS: 'webhookTimeoutMs',
  GATEWAY_WEBHOOK_RETRY_BASE_MS: 'webhookRetryBaseMs',
  GATEWAY_WEBHOOK_RETRY_MAX_MS: 'webhookRetryMaxMs',
  GATEWAY_WEBHOOK_RETRY_HOURS: 'webhookRetryHours',
  GATEWAY_WEBHOOK_PAUSE_AFTER_HOURS: 'webhookPauseAfterHours',
  GATEWAY_WEBHOOK_SUBSCRIPTION_CONCURRENCY: 'webhookSubscriptionConcurrency',
  GATEWAY_EVENT_RETENTION_DAYS: 'eventRetentionDays',
  GATEWAY_DEMO: 'demo',
  GATEWAY_ROLE: 'role',
};

export class SettingsError extends Error {}

function envKeyOf(key: string): string {
  return Object.entries(envNames).find(([, k]) => k === key)?.[0] ?? key;
}

/** Reads env (and GATEWAY_CONFIG, and --role), validates, and names the first bad setting. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env, argv: string[] = process.argv.slice(2)): Settings {
  const raw: Record<string, unknown> = {};
  const configFile = env.GATEWAY_CONFIG;
  if (configFile) {
    try {
      Object.assign(raw, JSON.parse(readFileSync(resolve(configFile), 'utf8')));
    } catch (error) {
      throw new SettingsError(`GATEWAY_CONFIG: cannot read ${configFile} as JSON: ${(error as Error).message}`);
    }
  }
  for (const [name, key] of Object.entries(envNames)) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const roleIndex = argv.findIndex((a) => a === '--role' || a.startsWith('--role='));
  if (roleIndex >= 0) {
    const arg = argv[roleIndex]!;
    // A bare `--role` is an error, not the default role.
    raw.role = (arg.includes('=') ? arg.split('=')[1] : argv[roleIndex + 1]) ?? '';
  }
  const parsed = settingsSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      const name = key === 'role' && roleIndex >= 0 ? '--role' : envKeyOf(key);
      return `${name}${issue.path.length > 1 ? '.' + issue.path.slice(1).join('.') : ''}: ${issue.message}`;
    });
    throw new SettingsError(`Invalid settings:\n  ${lines.join('\n  ')}`);
  }
  return parsed.data;
}
