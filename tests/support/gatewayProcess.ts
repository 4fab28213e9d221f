// Runs the gateway as real child processes (`src/main.ts --role …`) against the test run's Redis,
// so tests can kill -9 a worker or spread sockets over several web processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import type { Role } from '../../config/settings.ts';
import { freePort } from '../../src/redis/embeddedRedis.ts';
import { apiClient, createTenant, type Tenant, type TestGateway } from './testGateway.ts';

const projectRoot = fileURLToPath(new URL('../../', import.meta.url));
const outputLimit = 64 * 1024;

/** What every process of one simulated deployment shares: one Redis, one prefix, one set of keys. */
export interface Deployment {
  redisUrl: string;
  prefix: string;
  adminKey: string;
  secretKey: string;
  /** Each process's GATEWAY_DATA_DIR, removed by cleanup(). */
  dataDirs: string[];
  /** Removes the data folders the deployment's processes used. */
  cleanup(): void;
}

export function newDeployment(): Deployment {
  const dataDirs: string[] = [];
  return {
    dataDirs,
    redisUrl: inject('redisUrl'),
    prefix: `p${randomBytes(4).toString('hex')}`,
    adminKey: `admin-${randomBytes(16).toString('hex')}`,
    secretKey: randomBytes(32).toString('base64'),
    cleanup: () => { for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true }); },
  };
}

export interface GatewayProcess {
  role: Role;
  child: ChildProcess;
  pid: number;
  /** http://127.0.0.1:PORT (web and all roles; a worker has no HTTP server). */
  url: string;
  adminKey: string;
  prefix: string;
  api: TestGateway['api'];
  /** stdout and stderr so far (the last 64 KiB), for failure messages. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then wait for the process to exit (SIGKILL after 20 s). */
  stop(): Promise<void>;
}

// Children left running when a test file crashes are killed with it.
const running = new Set<ChildProcess>();
process.once('exit', () => { for (const child of running) child.kill('SIGKILL'); });

function childEnv(deployment: Deployment, port: number, dataDir: string, extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // The parent's gateway settings (a developer's shell, vitest's own variables) must not leak in.
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(GATEWAY_|VITEST|NODE_OPTIONS$|REDIS_URL$|PORT$|HOST$|PUBLIC_URL$|LOG_LEVEL$)/.test(name)) continue;
    env[name] = value;
  }
  return {
    ...env,
    REDIS_URL: deployment.redisUrl,
    GATEWAY_REDIS_PREFIX: deployment.prefix,
    GATEWAY_ADMIN_KEY: deployment.adminKey,
    GATEWAY_SECRET_KEY: deployment.secretKey,
    PORT: String(port),
    HOST: '127.0.0.1',
    GATEWAY_DEMO: 'off',
    GATEWAY_DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    GATEWAY_JOB_LOCK_MS: '2000',
    ...extra,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `src/main.ts --role role` and resolves once it serves /healthz (web, all) or its worker heartbeat is in Redis. */
export async function startGatewayProcess(deployment: Deployment, role: Role, options: { env?: Record<string, string>; readyTimeoutMs?: number } = {}): Promise<GatewayProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), `gateway-${role}-`));
  deployment.dataDirs.push(dataDir);
  // A free port can be taken between probing and binding: try again on EADDRINUSE.
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(deployment, role, dataDir, options);
    } catch (error) {
      if (attempt >= 3 || !/EADDRINUSE/.test((error as Error).message)) throw error;
    }
  }
}

async function launch(deployment: Deployment, role: Role, dataDir: string, options: { env?: Record<string, string>; readyTimeoutMs?: number }): Promise<GatewayProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--role', role], {
    cwd: projectRoot, env: childEnv(deployment, port, dataDir, options.env ?? {}), stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  const collect = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-outputLimit); };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => { running.delete(child); resolve({ code, signal }); });
  });
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((e) => { exit = e; });

  const url = `http://127.0.0.1:${port}`;
  const handle: GatewayProcess = {
    role, child, pid: child.pid!, url, adminKey: deployment.adminKey, prefix: deployment.prefix,
    api: apiClient(url),
    output: () => output,
    exited,
    kill: (signal) => { child.kill(signal); },
    async stop() {
      if (exit) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 45_000);
  const redis = role === 'worker' ? new Redis(deployment.redisUrl, { maxRetriesPerRequest: 1 }) : undefined;
  try {
    while (true) {
      if (exit) throw new Error(`gateway ${role} exited (${exit.code ?? exit.signal}) before it was ready:\n${output}`);
      if (Date.now() > deadline) {
        await handle.stop();
        throw new Error(`gateway ${role} was not ready within ${options.readyTimeoutMs ?? 45_000} ms:\n${output}`);
      }
      if (redis) {
        // The worker's heartbeat member is `${pid}-${random}`: this process's own beat, not an older worker's.
        const members = await redis.zrange(`${deployment.prefix}:workers`, '0', '-1');
        if (members.some((m) => m.startsWith(`${child.pid}-`))) return handle;
      } else {
        const healthy = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
        if (healthy) return handle;
      }
      await sleep(100);
    }
  } finally {
    redis?.disconnect();
  }
}

/** createTenant through a web process: it only uses the API and the platform key, which a process has too. */
export function createTenantOn(web: GatewayProcess, options: Parameters<typeof createTenant>[1] = {}): Promise<Tenant> {
  return createTenant(web as unknown as TestGateway, options);
}
