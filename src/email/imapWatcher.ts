// One IMAP mailbox watched: new mail (IDLE, and a poll besides for servers that drop IDLE) is fetched by
// UID past the cursor (mailbox, uidValidity, lastUid) kept in Redis, queued, and only then is the cursor
// advanced, so a killed process re-reads at most the mails it had not finished (deduplicated by their
// Message-IDs). A changed UIDVALIDITY voids the cursor: the mailbox is read again from the start and
// every mail already stored is recognised by its Message-ID. A closed imapflow client is dead, so
// every reconnect (with backoff) builds a new one. The host is a tenant's: one that resolves to loopback
// or a private network (unless GATEWAY_PROVIDER_PRIVATE_TARGETS allows it) stops the watcher, logged;
// the inbox's next change starts a new one.
import { ImapFlow } from 'imapflow';
import { hasCapability } from 'imapflow/lib/tools.js';
import type { Redis } from 'ioredis';
import { MailParseError, parseMail, type ParsedMail } from '../../adapters/email/parseMail.ts';
import { runScript } from '../commands/index.ts';
import { checkProviderHost, WebhookTargetError } from '../events/webhookTarget.ts';
import type { InboxRecord } from '../inboxes/inboxDirectory.ts';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';
import { emailSettingsOf } from './emailInbound.ts';

export interface ImapCredentials { host: string; port: number; secure: boolean; user: string; pass: string; mailbox: string }

export interface ImapWatcherDeps {
  redis: Redis;
  keys: Keyspace;
  log: Logger;
  /** Queues one mail durably (acceptParsedMail); resolves only when it is stored in the queue. */
  accept: (inbox: InboxRecord, mail: ParsedMail, raw: Buffer) => Promise<unknown>;
  /** Overrides for tests: poll interval (else the inbox setting), first backoff, TLS checks. */
  pollMs?: number;
  backoffMs?: number;
  rejectUnauthorized?: boolean;
  /** GATEWAY_PROVIDER_PRIVATE_TARGETS=allow: the host may be loopback or private (else refused). */
  allowPrivateTargets?: boolean;
}

/** UIDs fetched and queued per round: bounds memory (mails are up to the inbox's size limit each). */
const fetchBatch = 25;
/** Room for the headers of a mail cut at maxMailBytes (parseMail keeps them up to this). */
const maxHeaderBytes = 1024 * 1024;
const maxBackoffMs = 60_000;

export class ImapWatcher {
  private stopped = false;
  private client: ImapFlow | undefined;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  /** Mails queued by this watcher (for logs and the bench). */
  accepted = 0;

  constructor(private readonly deps: ImapWatcherDeps, readonly inbox: InboxRecord, private readonly credentials: ImapCredentials) {}

  start(): void {
    this.running ??= this.run();
  }

  /** Stops at once: a fetch in flight is abandoned (its mails are read again by the next watcher). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.client?.close();
    await this.running;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let connected = false;
      try {
        await this.session(() => { connected = true; failures = 0; });
      } catch (error) {
        if (!this.stopped) this.deps.log.warn({ inboxId: this.inbox.id, err: (error as Error).message }, 'imap session ended');
      }
      if (this.stopped) break;
      if (!connected) failures++;
      const base = this.deps.backoffMs ?? 1000;
      const delay = Math.min(maxBackoffMs, base * 2 ** Math.min(failures, 10)) * (0.75 + Math.random() * 0.5);
      await this.sleep(delay);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() { clearTimeout(timer); if (self.wake === done) self.wake = undefined; resolve(); }
      this.wake = done;
    });
  }

  private async session(onConnected: () => void): Promise<void> {
    const c = this.credentials;
    // Checked on every connect: a name may come to resolve elsewhere between sessions.
    if (!(await this.hostAllowed(c.host))) return;
    const client = new ImapFlow({
      host: c.host, port: c.port, secure: c.secure, auth: { user: c.user, pass: c.pass }, logger: false,
      tls: { rejectUnauthorized: this.deps.rejectUnauthorized ?? true }, connectionTimeout: 30_000, greetingTimeout: 16_000,
      socketTimeout: 5 * 60_000,
    });
    this.client = client;
    client.on('error', (error: Error) => this.deps.log.warn({ inboxId: this.inbox.id, err: error.message }, 'imap connection error'));
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    if (this.stopped) return;
    await client.connect();
    try {
      const mailbox = await client.mailboxOpen(c.mailbox || 'INBOX');
      let pending = true;
      client.on('exists', () => { pending = true; this.wake?.(); });
      const pollMs = this.deps.pollMs ?? emailSettingsOf(this.inbox).pollIntervalSeconds * 1000;
      while (!this.stopped && client.usable) {
        if (pending) {
          pending = false;
          await this.sync(client, mailbox.path, String(client.mailbox ? client.mailbox.uidValidity : mailbox.uidValidity));
          // Backoff resets only once a sync got through: an error after login keeps backing off.
          onConnected();
        }
        // Mail that arrived during the sync (`exists`) is read at once, not after a poll.
        if (pending) continue;
        await Promise.race([this.sleep(pollMs), closed]);
        pending = true;
      }
    } finally {
      if (client.usable) await client.logout().catch(() => client.close());
      else client.close();
    }
  }

  private async hostAllowed(host: string): Promise<boolean> {
    try {
      await checkProviderHost(host, this.deps.allowPrivateTargets ?? false);
      return true;
    } catch (error) {
      if (!(error instanceof WebhookTargetError)) throw error;
      const hint = this.deps.allowPrivateTargets ? '' : ' (private addresses only with GATEWAY_PROVIDER_PRIVATE_TARGETS=allow)';
      this.deps.log.error({ inboxId: this.inbox.id, host, err: `${error.message}${hint}` }, 'imap host refused; watcher stopped until the inbox is changed');
      this.stopped = true;
      return false;
    }
  }

  /**
   * Marks a batch \Seen or moves it (the inbox's afterProcessing). A server that refuses (no such mailbox) is
   * logged and passed over, so a wrong setting never stops the intake; a connection lost meanwhile throws,
   * and the batch is read again (its mails queued once) on the next connection.
   */
  private async afterProcessing(client: ImapFlow, uids: number[], settings: ReturnType<typeof emailSettingsOf>): Promise<void> {
    const range = uids.join(',');
    const where = { inboxId: this.inbox.id, afterProcessing: settings.afterProcessing, processedMailbox: settings.processedMailbox };
    let done: unknown = true;
    if (settings.afterProcessing === 'seen') done = await client.messageFlagsAdd(range, ['\\Seen'], { uid: true });
    else if (settings.afterProcessing === 'move' && settings.processedMailbox) {
      // imapflow's own test: MOVE announced, or folded into an IMAP4rev2 session.
      if (!hasCapability(client, 'MOVE')) return this.copyThenDelete(client, range, settings.processedMailbox, where);
      done = await client.messageMove(range, settings.processedMailbox, { uid: true });
    }
    if (done) return;
    if (!client.usable) throw new Error('the IMAP connection closed while marking or moving processed mail');
    this.deps.log.warn(where, 'imap server refused to mark or move processed mail; they stay where they are (check the inbox settings)');
  }

  /**
   * A move on a server without MOVE (RFC 6851), in its two steps, so the log says which one failed (imapflow's
   * own fallback answers false for both): a refused copy leaves the mail where it was; a refused delete leaves
   * it in both mailboxes.
   */
  private async copyThenDelete(client: ImapFlow, range: string, processedMailbox: string, where: Record<string, unknown>): Promise<void> {
    const closed = () => new Error('the IMAP connection closed while moving processed mail');
    if (!await client.messageCopy(range, processedMailbox, { uid: true })) {
      if (!client.usable) throw closed();
      this.deps.log.warn({ ...where, serverMove: false }, 'imap server refused to copy processed mail; they stay where they are (check the inbox settings)');
      return;
    }
    if (await client.messageDelete(range, { uid: true })) return;
    if (!client.usable) throw closed();
    this.deps.log.warn({ ...where, serverMove: false },
      'imap server copied processed mail to processedMailbox but refused to delete the originals; they are in both mailboxes (read once)');
  }

  /** Reads every mail past the cursor, in UID order, a batch at a time. */
  private async sync(client: ImapFlow, mailbox: string, uidValidity: string): Promise<void> {
    const cursorKey = this.deps.keys.imapCursor(this.inbox.id);
    const cursor = await this.deps.redis.hmget(cursorKey, 'mailbox', 'uidValidity', 'lastUid');
    let lastUid = Number(cursor[2] ?? 0);
    if (cursor[0] !== mailbox || cursor[1] !== uidValidity) {
      if (cursor[1]) this.deps.log.warn({ inboxId: this.inbox.id, mailbox, was: cursor[1], now: uidValidity }, 'imap UIDVALIDITY changed: reading the mailbox again (duplicates are recognised by Message-ID)');
      lastUid = 0;
      await runScript(this.deps.redis, 'advanceImapCursor', [cursorKey], [mailbox, uidValidity, 0, '1']);
    }
    const settings = emailSettingsOf(this.inbox);
    while (!this.stopped) {
      // `n:*` always names the newest mail, even below n: keep only UIDs past the cursor.
      const found = await client.search({ uid: `${lastUid + 1}:*` }, { uid: true });
      const uids = (found || []).filter((uid) => uid > lastUid).sort((a, b) => a - b).slice(0, fetchBatch);
      if (!uids.length) return;
      // Sizes first, then one source at a time, cut at the limit: a batch of huge mails never sits in memory at once,
      // and accept runs in UID order so seqs in a conversation follow the mailbox.
      const sizes = new Map((await client.fetchAll(uids.join(','), { uid: true, size: true }, { uid: true })).map((m) => [m.uid, m.size ?? 0]));
      for (const uid of uids) {
        if (this.stopped) return;
        if (!sizes.has(uid)) continue; // expunged between SEARCH and FETCH
        const fetched = await client.fetchOne(String(uid), { uid: true, source: { maxLength: settings.maxMailBytes + maxHeaderBytes } }, { uid: true });
        const raw = fetched ? fetched.source : undefined;
        if (!raw) continue;
        let mail: ParsedMail;
        try {
          mail = await parseMail(raw, { maxBytes: settings.maxMailBytes, originalBytes: sizes.get(uid) });
        } catch (error) {
          // Not a mail at all: skipped (never blocks the mailbox), and said so.
          if (error instanceof MailParseError) {
            this.deps.log.warn({ inboxId: this.inbox.id, uid, err: error.message }, 'imap mail skipped: not readable as a mail');
            continue;
          }
          throw error;
        }
        await this.deps.accept(this.inbox, mail, raw);
        this.accepted++;
      }
      // Marked or moved before the cursor passes them: a crash in between re-reads mails already queued (the
      // message dedup drops them; moved ones are not found again), where the other order left them unmarked for good.
      await this.afterProcessing(client, uids, settings);
      lastUid = uids[uids.length - 1]!;
      const advanced = await runScript(this.deps.redis, 'advanceImapCursor', [cursorKey], [mailbox, uidValidity, lastUid, '0']) as unknown as number;
      if (advanced === -1) {
        // Another watcher reset the cursor (new UIDVALIDITY): this one is stale.
        this.deps.log.warn({ inboxId: this.inbox.id, mailbox }, 'imap cursor belongs to another mailbox/UIDVALIDITY; watcher stopped');
        this.stopped = true;
        return;
      }
    }
  }
}
