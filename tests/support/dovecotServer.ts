// A real IMAP server for the email tests: Debian's dovecot-imapd, started unprivileged on a free
// loopback port with its own config in a temp dir (passwd-file auth, maildir), stopped after the file.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chownSync, chmodSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export const dovecotBinary = '/usr/sbin/dovecot';

// Dovecot 2.3's own capability list after login, less MOVE.
const dovecotCapabilitiesWithoutMove = 'IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS '
  + 'THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE '
  + 'QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY LITERAL+';

export interface DovecotServer {
  host: string;
  port: number;
  user: string;
  pass: string;
  dir: string;
  /** The imap credentials of an email inbox for this server. */
  imap(mailbox?: string): { host: string; port: number; secure: boolean; user: string; pass: string; mailbox: string };
  /** Runs doveadm against this instance (e.g. to change a mailbox's UIDVALIDITY). */
  doveadm(...args: string[]): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, ms: number, log: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('data', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`dovecot did not listen on ${port}: ${log()}`);
}

/** The account the mail processes run as: dovecot refuses root, so root runs them as the `dovecot` user. */
function mailAccount(): { user: string; uid: number; gid: number } {
  const me = userInfo();
  if (me.uid !== 0) return { user: me.username, uid: me.uid, gid: me.gid };
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('dovecot:'));
  if (!line) throw new Error('no dovecot system user: install dovecot-imapd (apt-get install -y dovecot-imapd)');
  const f = line.split(':');
  return { user: 'dovecot', uid: Number(f[2]), gid: Number(f[3]) };
}

/** `withoutMove`: the server does not announce MOVE (RFC 6851), as older servers do; clients then copy and delete. */
export async function startDovecot(options: { user?: string; pass?: string; withoutMove?: boolean } = {}): Promise<DovecotServer> {
  if (!existsSync(dovecotBinary)) throw new Error('The email tests need Debian\'s dovecot-imapd: sudo apt-get install -y dovecot-imapd');
  const dir = mkdtempSync(join(tmpdir(), 'gateway-test-dovecot-'));
  const port = await freePort();
  const user = options.user ?? 'support@shop.test';
  const pass = options.pass ?? 'imap-test-pass';
  const account = mailAccount();
  const me = userInfo();
  for (const sub of ['run', 'state', 'mail']) mkdirSync(join(dir, sub), { recursive: true });
  // As root the auth and mail processes run as dovecot: they need to reach the passwd file and the maildir.
  if (me.uid === 0) { chmodSync(dir, 0o755); chownSync(join(dir, 'mail'), account.uid, account.gid); }
  writeFileSync(join(dir, 'passwd'), `${user}:{PLAIN}${pass}:${account.uid}:${account.gid}::${join(dir, 'mail', user)}\n`);
  const internal = me.uid === 0 ? 'dovecot' : me.username;
  const login = me.uid === 0 ? 'dovenull' : me.username;
  writeFileSync(join(dir, 'dovecot.conf'), `
base_dir = ${join(dir, 'run')}
state_dir = ${join(dir, 'state')}
log_path = ${join(dir, 'dovecot.log')}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = ${internal}
default_internal_group = ${me.uid === 0 ? 'dovecot' : userInfo().username}
default_login_user = ${login}
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_uid = ${account.uid}
mail_gid = ${account.gid}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${join(dir, 'passwd')}
}
userdb {
  driver = passwd-file
  args = username_format=%u ${join(dir, 'passwd')}
}
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service imap {
  process_limit = 64
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
protocol imap {
  mail_max_userip_connections = 100
}
${options.withoutMove ? `imap_capability = ${dovecotCapabilitiesWithoutMove}\n` : ''}`);
  const conf = join(dir, 'dovecot.conf');
  const child: ChildProcess = spawn(dovecotBinary, ['-F', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d) => { output += d; });
  child.stderr?.on('data', (d) => { output += d; });
  const log = () => output + (existsSync(join(dir, 'dovecot.log')) ? readFileSync(join(dir, 'dovecot.log'), 'utf8') : '');
  await waitForPort(port, 10_000, log);
  return {
    host: '127.0.0.1', port, user, pass, dir,
    imap: (mailbox = 'INBOX') => ({ host: '127.0.0.1', port, secure: false, user, pass, mailbox }),
    doveadm: (...args) => {
      const r = spawnSync('/usr/bin/doveadm', ['-c', conf, ...args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`doveadm ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    },
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
