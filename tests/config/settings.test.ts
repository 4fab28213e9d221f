// loadSettings: defaults, errors that name the setting and what it expects, GATEWAY_CONFIG, --role.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSettings, SettingsError } from '../../config/settings.ts';

const validSecret = 'a'.repeat(32);

function settingsErrorOf(run: () => unknown): SettingsError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(SettingsError);
    return error as SettingsError;
  }
  throw new Error('expected a SettingsError');
}

describe('loadSettings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-settings-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('has defaults for everything', () => {
    const settings = loadSettings({}, []);
    expect(settings).toMatchObject({
      port: 3000, host: '0.0.0.0', dataDir: 'data', redisPrefix: 'gw', logLevel: 'info', role: 'all', demo: 'auto',
      bodyLimitBytes: 1024 * 1024, wsMaxFrameBytes: 64 * 1024, jobLockMs: 30_000, accounts: [],
    });
    expect(settings.redisUrl).toBeUndefined();
    expect(settings.secretKey).toBeUndefined();
    expect(settings.adminKey).toBeUndefined();
  });

  it('reads the env names', () => {
    const settings = loadSettings({
      PORT: '8080', REDIS_URL: 'redis://cache:6379/2', GATEWAY_SECRET_KEY: validSecret, GATEWAY_REDIS_PREFIX: '{gw}',
      LOG_LEVEL: 'warn', GATEWAY_JOB_LOCK_MS: '5000', GATEWAY_DEMO: 'off', PUBLIC_URL: 'https://chat.example.com',
    }, []);
    expect(settings).toMatchObject({
      port: 8080, redisUrl: 'redis://cache:6379/2', secretKey: validSecret, redisPrefix: '{gw}', logLevel: 'warn',
      jobLockMs: 5000, demo: 'off', publicUrl: 'https://chat.example.com',
    });
    // An empty variable counts as unset.
    expect(loadSettings({ PORT: '' }, []).port).toBe(3000);
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT', /number/i],
    [{ PORT: '70000' }, 'PORT', /65535/],
    [{ GATEWAY_SECRET_KEY: 'short' }, 'GATEWAY_SECRET_KEY', /at least 32 characters/],
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL', /redis:\/\/ or rediss:\/\//],
    [{ GATEWAY_ADMIN_KEY: 'tiny' }, 'GATEWAY_ADMIN_KEY', /at least 24 characters/],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /info/],
  ])('rejects %o naming %s and what it expects', (env, name, expected) => {
    const error = settingsErrorOf(() => loadSettings(env, []));
    expect(error.message).toContain(`${name}:`);
    expect(error.message).toMatch(expected);
  });

  it('parses --role in both forms and rejects an unknown role', () => {
    expect(loadSettings({}, ['--role', 'worker']).role).toBe('worker');
    expect(loadSettings({}, ['--role=web']).role).toBe('web');
    expect(loadSettings({}, ['--verbose', '--role', 'all']).role).toBe('all');
    const error = settingsErrorOf(() => loadSettings({}, ['--role', 'cook']));
    expect(error.message).toContain('--role:');
    expect(error.message).toMatch(/web.*worker.*all/);
    expect(settingsErrorOf(() => loadSettings({}, ['--role'])).message).toContain('--role:');
    // The env form names itself; the flag wins over it.
    expect(loadSettings({ GATEWAY_ROLE: 'worker' }, []).role).toBe('worker');
    expect(loadSettings({ GATEWAY_ROLE: 'worker' }, ['--role=web']).role).toBe('web');
    expect(settingsErrorOf(() => loadSettings({ GATEWAY_ROLE: 'cook' }, [])).message).toContain('GATEWAY_ROLE:');
  });

  it('reads GATEWAY_CONFIG with declared accounts and inboxes; env wins over the file', () => {
    const file = join(dir, 'gateway.json');
    writeFileSync(file, JSON.stringify({
      port: 4000,
      logLevel: 'debug',
      accounts: [{
        id: 'acme', name: 'Acme',
        inboxes: [
          { id: 'acme-chat', type: 'webchat', name: 'Site chat', settings: { allowedOrigins: ['https://acme.example'] } },
          { type: 'wechat', name: 'Official account', credentials: { appId: 'wx1', appSecret: 's', token: 'tok' } },
        ],
      }],
    }));
    const settings = loadSettings({ GATEWAY_CONFIG: file, PORT: '5000' }, []);
    expect(settings.port).toBe(5000);
    expect(settings.logLevel).toBe('debug');
    expect(settings.configFile).toBe(file);
    expect(settings.accounts).toEqual([{
      id: 'acme', name: 'Acme',
      inboxes: [
        { id: 'acme-chat', type: 'webchat', name: 'Site chat', settings: { allowedOrigins: ['https://acme.example'] }, credentials: {} },
        { type: 'wechat', name: 'Official account', settings: {}, credentials: { appId: 'wx1', appSecret: 's', token: 'tok' } },
      ],
    }]);
  });

  it('names GATEWAY_CONFIG when the file is missing, not JSON, or declares a bad account', () => {
    expect(settingsErrorOf(() => loadSettings({ GATEWAY_CONFIG: join(dir, 'missing.json') }, [])).message).toMatch(/^GATEWAY_CONFIG: cannot read/);
    const notJson = join(dir, 'broken.json');
    writeFileSync(notJson, '{ port: 1');
    expect(settingsErrorOf(() => loadSettings({ GATEWAY_CONFIG: notJson }, [])).message).toMatch(/^GATEWAY_CONFIG: cannot read .* as JSON/);
    const badAccount = join(dir, 'bad-account.json');
    writeFileSync(badAccount, JSON.stringify({ accounts: [{ id: 'a b', name: 'Spaces' }] }));
    expect(settingsErrorOf(() => loadSettings({ GATEWAY_CONFIG: badAccount }, [])).message).toContain('accounts.0.id');
  });
});

describe('the gateway process', () => {
  it('exits non-zero naming PORT when PORT is not a number (before touching Redis)', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: join(import.meta.dirname, '../..'),
      env: { ...process.env, PORT: 'abc', REDIS_URL: 'redis://127.0.0.1:1', GATEWAY_DATA_DIR: join(tmpdir(), 'gateway-never-used') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(output).toMatch(/PORT: .*number/i);
  }, 60_000);
});
