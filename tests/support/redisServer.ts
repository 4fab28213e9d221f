// The test run starts its own real redis-server (never a mock), the same way the gateway does.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../src/redis/embeddedRedis.ts';

declare module 'vitest' {
  export interface ProvidedContext { redisUrl: string }
}

let redis: EmbeddedRedis | undefined;
let dataDir: string | undefined;

export async function setup(project: TestProject) {
  dataDir = mkdtempSync(join(tmpdir(), 'gateway-test-redis-'));
  redis = await startEmbeddedRedis({ dataDir });
  project.provide('redisUrl', redis.url);
}

export async function teardown() {
  await redis?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}
