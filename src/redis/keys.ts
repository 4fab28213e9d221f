// Every Redis key the gateway uses, in one place. All share the prefix (hash-tag it, `{gw}`, for Redis Cluster).
export type Keyspace = ReturnType<typeof keyspace>;

export function keyspace(prefix: string) {
  const k = (...parts: string[]) => [prefix, ...parts].join(':');
  return {
    prefix,
    record: (kind: string, id: string) => k(kind, id),
    accountIndex: (accountId: string, kind: string) => k('acc', accountId, kind),
    accounts: k('accounts'),
    apiKey: (hash: string) => k('apikey', hash),
    agentToken: (hash: string) => k('agenttoken', hash),
    platformKeyHash: k('platformkey'),
    contact: (id: string) => k('contact', id),
    contactIdentity: (accountId: string, channel: string, identityHash: string) => k('contactid', accountId, channel, identityHash),
    /** A CRM's own id for a contact (unique per account) -> contact id. */
    contactExternalId: (accountId: string, externalIdHash: string) => k('contactext', accountId, externalIdHash),
    conversation: (id: string) => k('conv', id),
    conversationMessages: (id: string) => k('conv', id, 'msgs'),
    conversationNotes: (id: string) => k('conv', id, 'notes'),
    openConversation: (inboxId: string, identityHash: string) => k('openconv', inboxId, identityHash),
    lastConversation: (inboxId: string, identityHash: string) => k('lastconv', inboxId, identityHash),
    sequence: (inboxId: string, identityHash: string) => k('seq', inboxId, identityHash),
    message: (id: string) => k('msg', id),
    messageDedup: (inboxId: string, externalIdHash: string) => k('msgext', inboxId, externalIdHash),
    idempotency: (accountId: string, keyHash: string) => k('idem', accountId, keyHash),
    /** Outbound messages stored but not yet sent (zset of message ids by store time, ms): see outboxSweeper. */
    outbox: k('outbox'),
    agentState: (agentId: string) => k('agentstate', agentId),
    /** A routing queue's keys (cfg, members, avail:{channel}, waiting:{channel}, turns): see src/commands/includes/routing.lua. */
    routingQueue: (accountId: string, queueId: string, part: string) => k('acc', accountId, 'q', queueId, part),
    routingTimers: k('routingtimers'),
    accountEvents: (accountId: string) => k('acc', accountId, 'events'),
    events: k('events'),
    webhookAccounts: k('webhookaccounts'),
    /** Webhook delivery lanes (one FIFO per subscription and conversation): see src/events/deliveryLanes.ts. */
    webhookDue: k('whdue'),
    webhookOff: k('whoff'),
    webhookLane: (subscriptionId: string, lane: string) => k('wh', subscriptionId, 'lane', lane),
    webhookLanes: (subscriptionId: string) => k('wh', subscriptionId, 'lanes'),
    webhookDelivery: (subscriptionId: string, eventId: string) => k('wh', subscriptionId, 'dlv', eventId),
    webhookAttempts: (subscriptionId: string, eventId: string) => k('wh', subscriptionId, 'dlv', eventId, 'attempts'),
    webhookDeliveryIndex: (subscriptionId: string) => k('wh', subscriptionId, 'dlvs'),
    webhookHealth: (subscriptionId: string) => k('wh', subscriptionId, 'health'),
    resolvedConversations: k('resolved'),
    live: k('live'),
    workerHeartbeats: k('workers'),
    bootstrap: (name: string) => k('bootstrap', name),
    /** A WeChat access_token, per appId and a fingerprint of its secret. */
    wechatToken: (appId: string, secretFingerprint: string) => k('wechat', 'token', appId, secretFingerprint),
    wechatpayCertificates: (inboxId: string) => k('wechatpay', 'certs', inboxId),
    /** A paid transaction -> the payer's contact (refund notifications carry no OpenID). */
    paymentTransaction: (accountId: string, transactionDigest: string) => k('paytx', accountId, transactionDigest),
    /** SMS: opted-out numbers of an inbox (E.164 -> when), and the dedup of the messages that changed it. */
    smsOptOuts: (inboxId: string) => k('sms', 'optout', inboxId),
    smsOptOutDedup: (inboxId: string, externalIdHash: string) => k('sms', 'optoutmsg', inboxId, externalIdHash),
    /** The once-only send marker of an outbound message on other channels (src/outbound/sendMarker.ts). */
    sendMarker: (messageId: string) => k('outbound', 'send', messageId),
    /** SMS: the once-only send marker of an outbound message (sending:<ms> | sent:<provider id>). */
    smsSendMarker: (messageId: string) => k('sms', 'send', messageId),
    /** SMS: a provider's message id -> the gateway's outbound message id, and receipts that came before it was known. */
    smsProviderMessage: (inboxId: string, externalIdHash: string) => k('sms', 'ext', inboxId, externalIdHash),
    smsEarlyReceipt: (inboxId: string, externalIdHash: string) => k('sms', 'early', inboxId, externalIdHash),
    /** SMS: an inbox's send rate (GCRA theoretical arrival time, ms). */
    smsSendRate: (inboxId: string) => k('sms', 'rate', inboxId),
    /** An email thread anchor (a Message-ID, or contact + subject) -> its conversation. */
    threadAnchor: (inboxId: string, kind: 'message' | 'subject', digest: string) => k('thread', inboxId, kind, digest),
    /** An IMAP mailbox's cursor (hash: mailbox, uidValidity, lastUid). */
    imapCursor: (inboxId: string) => k('imap', 'cursor', inboxId),
    /** Which worker process watches an inbox's IMAP mailbox (a renewed lease). */
    imapLease: (inboxId: string) => k('imap', 'lease', inboxId),
    /** A Mailgun webhook token seen for an inbox -> the digest of the body it came with (replays refused). */
    emailWebhookToken: (inboxId: string, tokenDigest: string) => k('emailhook', inboxId, tokenDigest),
  };
}
