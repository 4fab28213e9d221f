// Starts a local redis-server child when REDIS_URL is unset: AOF on, its own data folder, a free port.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export interface EmbeddedRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export class RedisNotInstalledError extends Error {}

const installHint =
  'redis-server is not installed. Install it with: sudo apt-get install -y redis-server ' +
  '(or set REDIS_URL=redis://host:6379 to use a running Redis 7).';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function findRedisServer(): string | undefined {
  for (const candidate of ['redis-server', '/usr/bin/redis-server', '/usr/local/bin/redis-server']) {
    const probe = spawnSync(candidate, ['--version'], { stdio: 'ignore' });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

// On Debian as root we may install the package ourselves; anywhere else we say exactly what to run.
export function ensureRedisServerInstalled(log: (line: string) => void = console.error): string {
  const found = findRedisServer();
  if (found) return found;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const isDebian = existsSync('/etc/debian_version') && existsSync('/usr/bin/apt-get');
  if (isRoot && isDebian && process.env.GATEWAY_NO_INSTALL !== '1') {
    log('redis-server not found: installing Debian package redis-server (apt-get)…');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    const install = spawnSync('apt-get', ['install', '-y', '-qq', 'redis-server'], { stdio: 'inherit', env });
    const installed = install.status === 0 ? findRedisServer() : undefined;
    if (installed) return installed;
  }
  throw new RedisNotInstalledError(installHint);
}

export async function startEmbeddedRedis(options: {
  dataDir: string;
  port?: number;
  log?: (line: string) => void;
  appendfsync?: 'always' | 'everysec';
}): Promise<EmbeddedRedis> {
  const binary = ensureRedisServerInstalled(options.log);
  mkdirSync(options.dataDir, { recursive: true });
  const port = options.port ?? (await freePort());
  const child: ChildProcess = spawn(
    binary,
    [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', options.dataDir,
      '--appendonly', 'yes',
      '--appendfsync', options.appendfsync ?? 'everysec',
      '--maxmemory-policy', 'noeviction',
      '--save', '',
      '--daemonize', 'no',
      '--protected-mode', 'yes',
      '--loglevel', 'warning',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const url = `redis://127.0.0.1:${port}`;
  await waitForRedis(url, child, () => stderr);
  // The child dies with us even on a crash: it holds no work of its own beyond the AOF.
  const onExit = () => { if (child.exitCode === null) child.kill('SIGTERM'); };
  process.once('exit', onExit);
  return {
    url,
    port,
    async stop() {
      process.removeListener('exit', onExit);
      if (child.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    },
  };
}

async function waitForRedis(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${stderr().trim()}`);
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      // While the AOF loads, commands answer LOADING: wait until it is done.
      await client.ping();
      client.disconnect();
      return;
    } catch {
      client.disconnect();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not become ready on ${url}: ${stderr().trim()}`);
}
