// Every IMAP mailbox of every email inbox is watched by exactly one worker process: each worker
// scans the inboxes, takes the free leases (Redis, renewed while it lives) and watches those
// mailboxes. A worker that dies stops renewing, and another takes its mailboxes over after the ttl;
// a worker that finds its lease taken (it stalled past the ttl) stops its watcher at once.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import type { InboxDirectory, InboxRecord } from '../inboxes/inboxDirectory.ts';
import type { Logger } from '../logger.ts';
import type { Keyspace } from '../redis/keys.ts';
import type { AccountDirectory } from '../tenancy/accounts.ts';
import { ImapWatcher, type ImapCredentials, type ImapWatcherDeps } from './imapWatcher.ts';

export interface ImapWatchersOptions {
  /** How long a lease lasts unrenewed (a dead worker's mailboxes wait this long). */
  leaseMs?: number;
  /** How often leases are renewed and inboxes scanned (well under leaseMs). */
  scanMs?: number;
}

export class ImapWatchers {
  readonly holderId = `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  private readonly watchers = new Map<string, { watcher: ImapWatcher; fingerprint: string }>();
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private readonly leaseMs: number;
  private readonly scanMs: number;

  constructor(
    private readonly deps: { redis: Redis; keys: Keyspace; log: Logger; accounts: AccountDirectory; inboxes: InboxDirectory }
      & Omit<ImapWatcherDeps, 'redis' | 'keys' | 'log'>,
    options: ImapWatchersOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? 30_000;
    this.scanMs = options.scanMs ?? Math.max(200, Math.floor(this.leaseMs / 3));
  }

  async start(): Promise<void> {
    await this.scan();
    this.timer = setInterval(() => { this.scanning ??= this.scan().finally(() => { this.scanning = undefined; }); }, this.scanMs);
  }

  /** The inbox ids this process watches now. */
  get watching(): string[] {
    return [...this.watchers.keys()];
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.scanning;
    await Promise.all([...this.watchers.keys()].map((id) => this.drop(id)));
  }

  private async scan(): Promise<void> {
    const renewed = new Set<string>();
    try {
      const wanted = new Map<string, { inbox: InboxRecord; imap: ImapCredentials }>();
      let cursor: string | undefined;
      do {
        const page = await this.deps.accounts.list({ limit: 100, ...(cursor ? { cursor } : {}) });
        for (const account of page.items) {
          if (account.status !== 'active') continue;
          for (const inbox of await this.deps.inboxes.records.listAll(account.id)) {
            if (inbox.type !== 'email' || !inbox.enabled) continue;
            // One inbox whose credentials cannot be opened must not stop the others' lease renewal.
            try {
              const imap = (this.deps.inboxes.credentials(inbox) as { imap?: ImapCredentials }).imap;
              if (imap) wanted.set(inbox.id, { inbox, imap });
            } catch (error) {
              this.deps.log.warn({ inboxId: inbox.id, err: (error as Error).name }, 'imap inbox skipped: its credentials cannot be opened');
            }
          }
        }
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      for (const id of this.watchers.keys()) if (!wanted.has(id)) await this.drop(id);
      await this.holdWanted(wanted, renewed);
    } catch (error) {
      this.deps.log.warn({ err: (error as Error).message }, 'imap watcher scan failed; retried next round');
    }
    // A watcher whose lease was not renewed this round may be taken over: stop it now.
    for (const [id, current] of [...this.watchers]) {
      if (renewed.has(id)) continue;
      this.watchers.delete(id);
      this.deps.log.warn({ inboxId: id }, 'imap lease not renewed this round; watcher stopped');
      await current.watcher.stop().catch(() => undefined);
    }
  }

  private async holdWanted(wanted: Map<string, { inbox: InboxRecord; imap: ImapCredentials }>, renewed: Set<string>): Promise<void> {
    for (const [id, { inbox, imap }] of wanted) {
      const held = await runScript(this.deps.redis, 'holdLease', [this.deps.keys.imapLease(id)], [this.holderId, this.leaseMs]) as unknown as number;
      const current = this.watchers.get(id);
      if (held !== 1) {
        if (current) {
          this.deps.log.warn({ inboxId: id }, 'imap lease lost to another worker; watcher stopped');
          this.watchers.delete(id);
          await current.watcher.stop();
        }
        continue;
      }
      renewed.add(id);
      // A changed inbox (credentials, settings) gets a new watcher.
      const fingerprint = createHash('sha256').update(`${inbox.updatedAt}\n${inbox.sealedCredentials}`).digest('hex');
      if (current?.fingerprint === fingerprint) continue;
      if (current) await current.watcher.stop();
      const watcher = new ImapWatcher({ ...this.deps, redis: this.deps.redis, keys: this.deps.keys, log: this.deps.log }, inbox, imap);
      this.watchers.set(id, { watcher, fingerprint });
      watcher.start();
        this.deps.log.info({ inboxId: id, holder: this.holderId }, 'imap watcher started');
    }
  }

  private async drop(inboxId: string): Promise<void> {
    const current = this.watchers.get(inboxId);
    this.watchers.delete(inboxId);
    await current?.watcher.stop();
    await runScript(this.deps.redis, 'releaseLease', [this.deps.keys.imapLease(inboxId)], [this.holderId]).catch(() => undefined);
  }
}
