// The test run starts its own real redis-server (never a mock), the same way the gateway does, and
// makes sure Debian's Chromium is there for the browser tests.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../src/redis/embeddedRedis.ts';

declare module 'vitest' {
  export interface ProvidedContext { redisUrl: string }
}

let redis: EmbeddedRedis | undefined;
let dataDir: string | undefined;

const chromiumPath = '/usr/bin/chromium';

// Like redis-server: on Debian as root the test run installs it; elsewhere it says what to install.
function ensureChromiumInstalled(): void {
  if (existsSync(chromiumPath)) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && existsSync('/usr/bin/apt-get')) {
    console.error('chromium not found: installing Debian package chromium for the browser tests (apt-get)…');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    spawnSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'inherit', env });
  }
  if (!existsSync(chromiumPath)) throw new Error('The browser tests need Debian\'s Chromium: sudo apt-get install -y chromium');
}

// The email tests' IMAP server, installed the same way (the tests start their own instance, see dovecotServer.ts).
// dovecot-core alone has the daemon but not the IMAP server process: both must be there.
const dovecotInstalled = () => existsSync('/usr/sbin/dovecot') && existsSync('/usr/lib/dovecot/imap');
function ensureDovecotInstalled(): void {
  if (dovecotInstalled()) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && existsSync('/usr/bin/apt-get')) {
    console.error('dovecot not found: installing Debian package dovecot-imapd for the email tests (apt-get)…');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    spawnSync('apt-get', ['install', '-y', '-qq', 'dovecot-imapd'], { stdio: 'inherit', env });
  }
  if (!dovecotInstalled()) throw new Error('The email tests need Debian\'s dovecot-imapd: sudo apt-get install -y dovecot-imapd');
}

export async function setup(project: TestProject) {
  ensureChromiumInstalled();
  ensureDovecotInstalled();
  dataDir = mkdtempSync(join(tmpdir(), 'gateway-test-redis-'));
  redis = await startEmbeddedRedis({ dataDir });
  project.provide('redisUrl', redis.url);
}

export async function teardown() {
  await redis?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}
