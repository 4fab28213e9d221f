// Consumes `payment` jobs: a payment or refund becomes an event on the payer's contact and, when the
// payer is talking to an agent in one of the account's WeChat inboxes, a note in that conversation.
import type { Redis } from 'ioredis';
import { runScript } from '../commands/index.ts';
import { keyDigest, newId } from '../ids.ts';
import type { InboxDirectory } from '../inboxes/inboxDirectory.ts';
import type { Keyspace } from '../redis/keys.ts';
import type { PaymentJob } from '../queues.ts';

export class PaymentRecorder {
  constructor(private readonly redis: Redis, private readonly keys: Keyspace, private readonly inboxes: InboxDirectory, private readonly dedupSeconds: number) {}

  async record(job: PaymentJob): Promise<'recorded' | 'duplicate'> {
    const { payment } = job;
    const transactionKey = this.keys.paymentTransaction(job.accountId, keyDigest(payment.transactionId));
    // Refunds carry no OpenID: the payer is whoever paid that transaction.
    let openId = payment.openId ?? '';
    if (!openId) {
      const contactId = await this.redis.get(transactionKey);
      if (contactId) openId = (await this.redis.hget(this.keys.contact(contactId), 'channelId')) ?? '';
    }
    const identity = openId ? keyDigest(openId) : '';
    let conversationId = '';
    let conversationInbox = '';
    if (identity) {
      for (const inbox of await this.inboxes.records.listAll(job.accountId)) {
        if (inbox.type !== 'wechat') continue;
        const open = await this.redis.get(this.keys.openConversation(inbox.id, identity));
        if (open) { conversationId = open; conversationInbox = inbox.id; break; }
      }
    }
    const now = new Date().toISOString();
    const noteId = `msg_${keyDigest(`${job.inboxId}\n${payment.notificationId}\nnote`)}`;
    const money = `${(payment.amount.refund ?? payment.amount.total) / 100} ${payment.amount.currency}`;
    const note = payment.type === 'payment.succeeded'
      ? `Payment received: ${money} (order ${payment.outTradeNo})`
      : `Refund ${payment.status === 'SUCCESS' ? 'completed' : payment.status.toLowerCase()}: ${money} (order ${payment.outTradeNo})`;
    const body = JSON.stringify({
      id: noteId, accountId: job.accountId, inboxId: conversationInbox, channel: 'wechat', direction: 'inbound',
      externalId: payment.refundId ?? payment.transactionId, from: { channelId: openId }, to: { channelId: conversationInbox },
      sentAt: payment.at, receivedAt: now,
      content: { type: 'event', text: note, event: { name: payment.type, key: payment.transactionId } },
    });
    const data = JSON.stringify({
      transactionId: payment.transactionId, outTradeNo: payment.outTradeNo, amount: payment.amount, status: payment.status, at: payment.at,
      ...(payment.refundId ? { refundId: payment.refundId, outRefundNo: payment.outRefundNo } : {}), ...(openId ? { openId } : {}),
    });
    const dedupKey = this.keys.messageDedup(job.inboxId, keyDigest(`payment\n${payment.notificationId}`));
    const r = (await runScript(this.redis, 'recordPayment', [
      dedupKey, transactionKey, identity ? this.keys.contactIdentity(job.accountId, 'wechat', identity) : dedupKey,
    ], [
      this.keys.prefix, now, job.accountId, job.inboxId, newId('ct'), openId, data, payment.type,
      `evt_pay_${keyDigest(`${job.inboxId}\n${payment.notificationId}`)}`, conversationId, noteId, body, this.dedupSeconds,
    ])) as string[];
    return r[0] === 'duplicate' ? 'duplicate' : 'recorded';
  }
}
