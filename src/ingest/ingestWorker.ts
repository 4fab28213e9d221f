// Consumes `inbound`: stores each message once (script ingestInbound), then routes a new (or, on a
// retry after a crash, a still unassigned) conversation. Safe to run any number of times for one job.
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import { keyDigest, newId } from '../ids.ts';
import type { Keyspace } from '../redis/keys.ts';
import { contactJobSchema, inboundJobSchema, paymentJobSchema, type InboundJob } from '../queues.ts';
import type { PaymentRecorder } from '../wechatpay/paymentRecorder.ts';
import type { ContactUpdates } from '../contacts/contactUpdates.ts';
import type { Router } from '../routing/router.ts';
import { mediaJobName, type MediaJobResult, type WechatInboundMedia } from '../wechat/wechatInboundMedia.ts';

export interface IngestResult {
  messageId: string; contactId: string; conversationId: string; duplicate: boolean; assigneeId: string;
}

export function createIngestProcessor(deps: {
  redis: Redis; keys: Keyspace; retentionSeconds: number; router: Router; contacts: ContactUpdates; payments?: PaymentRecorder;
  inboundMedia?: WechatInboundMedia;
}) {
  const { redis, keys, router } = deps;
  return async function processInbound(job: Job): Promise<IngestResult | 'updated' | 'recorded' | 'duplicate' | 'skipped' | MediaJobResult> {
    if (job.name === 'contact') return deps.contacts.applyChannelEvent(contactJobSchema.parse(job.data));
    if (job.name === 'payment') {
      if (!deps.payments) throw new Error('payment jobs need a PaymentRecorder');
      return deps.payments.record(paymentJobSchema.parse(job.data));
    }
    if (job.name === mediaJobName) {
      if (!deps.inboundMedia) throw new Error('media jobs need a WechatInboundMedia');
      return deps.inboundMedia.process(job);
    }
    const data = inboundJobSchema.parse(job.data);
    const m = data.message;
    const identity = keyDigest(m.from.channelId);
    const body = JSON.stringify({
      id: data.messageId, accountId: m.accountId, inboxId: m.inboxId, channel: m.channel, direction: 'inbound',
      externalId: m.externalId, from: m.from, to: m.to, sentAt: m.sentAt, receivedAt: data.receivedAt, content: m.content,
    });
    const newConversationId = newId('cv');
    const r = (await runScript(redis, 'ingestInbound', [
      keys.messageDedup(m.inboxId, keyDigest(m.externalId)),
      keys.contactIdentity(m.accountId, m.channel, identity),
      keys.openConversation(m.inboxId, identity),
      keys.lastConversation(m.inboxId, identity),
    ], [
      keys.prefix, m.accountId, m.inboxId, m.channel, m.from.channelId, data.contactName, data.messageId,
      newId('ct'), newConversationId, new Date().toISOString(), data.seq, body, data.visitorHint,
      keys.sequence(m.inboxId, identity), deps.retentionSeconds, Date.now(),
      data.thread ? threadArgument(keys, m.inboxId, data.thread, deps.retentionSeconds, keys.openConversation(m.inboxId, `${identity}:${newConversationId}`)) : '',
    ])) as [string, string, string, number, string, number, number, number, number];
    // A thread message with no conversation to join and not allowed to open one (automated mail).
    if (r[0] === '') return 'skipped';
    const result: IngestResult = {
      messageId: r[0], contactId: r[1], conversationId: r[2], duplicate: r[3] === 1, assigneeId: r[4],
    };
    // Queued for duplicates too, so a crash before this line is mended by the retry (the job id dedups).
    await deps.inboundMedia?.enqueueFor(result.messageId, m);
    // Routed in the same job (no extra queue hop for a first message). Any later message of a
    // conversation left unrouted (a crash between the two steps) routes it too.
    if (r[8] === 1) {
      await router.routeConversation(m.accountId, result.conversationId, {
        inboxId: m.inboxId, channel: m.channel, contactId: result.contactId,
        text: m.content.text ?? m.content.event?.key ?? m.content.event?.name ?? '',
      });
    }
    return result;
  };
}

/** The ingest script's thread argument: anchors become conversation ids or the keys that hold one. */
function threadArgument(keys: Keyspace, inboxId: string, thread: NonNullable<InboundJob['thread']>, retentionSeconds: number, openKey: string): string {
  const keyOf = (kind: 'message' | 'subject', value: string) => keys.threadAnchor(inboxId, kind, value);
  return JSON.stringify({
    candidates: thread.anchors.map((a) => a.kind === 'conversation' ? `c:${a.value}` : `k:${keyOf(a.kind, a.value)}`),
    pointers: thread.records.filter((r) => r.kind === 'message').map((r) => [keyOf('message', r.value), retentionSeconds]),
    refresh: thread.records.filter((r) => r.kind === 'subject').map((r) => [keyOf('subject', r.value), thread.subjectWindowSeconds]),
    openNew: thread.openNew ? 1 : 0,
    reopen: thread.reopen ? 1 : 0,
    openKey,
  });
}
