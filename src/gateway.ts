// Composes the gateway from its parts for a role: `web` (HTTP + sockets + live feed), `worker`
// (queue consumers + webhook dispatch), or `all`. start() and stop() are the whole lifecycle.
import { createHmac } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { Worker, type Job, type Processor } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Role, Settings } from '../config/settings.ts';
import type { ChannelAdapter } from '../adapters/channelAdapter.ts';
import { WebchatAdapter } from '../adapters/webchat/webchatAdapter.ts';
import { WechatAdapter } from '../adapters/wechat/wechatAdapter.ts';
import { EmailAdapter } from '../adapters/email/emailAdapter.ts';
import { acceptParsedMail } from './email/emailInbound.ts';
import { ImapWatchers, type ImapWatchersOptions } from './email/imapWatchers.ts';
import { AgentChannel } from './agents/agentChannel.ts';
import { AgentSocketLeases } from './agents/agentSocketLeases.ts';
import { registerAgentConsoleRoute } from './agents/agentConsoleRoute.ts';
import { registerAccountRoutes } from './api/accountRoutes.ts';
import { registerAgentRoutes } from './api/agentRoutes.ts';
import { registerConversationRoutes } from './api/conversationRoutes.ts';
import { registerCrmRoutes } from './api/crmRoutes.ts';
import { registerInboxRoutes } from './api/inboxRoutes.ts';
import { registerRoutingRoutes } from './api/routingRoutes.ts';
import { registerOperationsRoutes, workerHeartbeatMs } from './api/operationsRoutes.ts';
import type { ApiServices } from './api/services.ts';
import { registerWebhookRoutes } from './api/webhookRoutes.ts';
import { ContactUpdates } from './contacts/contactUpdates.ts';
import { ConversationActions } from './conversations/conversationActions.ts';
import { ConversationStore } from './conversations/conversationStore.ts';
import { RetentionSweeper } from './conversations/retentionSweeper.ts';
import { createSecretBox } from './crypto/secretBox.ts';
import { registerDemoRoutes } from './demo.ts';
import { DeliveryLanes } from './events/deliveryLanes.ts';
import { EventRetention } from './events/eventRetention.ts';
import { WebhookDeliverer } from './events/webhookDeliverer.ts';
import { createLegacyWebhookJobMover, WebhookDispatcher } from './events/webhookDispatcher.ts';
import type { AddressLookup } from './events/checkedDispatcher.ts';
import { GatewayAddress } from './events/webhookTarget.ts';
import { WebhookSubscriptions } from './events/webhookSubscriptions.ts';
import { ApiRegistry } from './http/apiRoutes.ts';
import { Authenticator } from './http/authenticate.ts';
import { HttpError } from './http/errors.ts';
import { createPushLane } from './http/pushLane.ts';
import { createHttpApp, createHttpServer } from './http/server.ts';
import { InboxDirectory } from './inboxes/inboxDirectory.ts';
import { InboundAcceptor } from './ingest/acceptInbound.ts';
import { createIngestProcessor } from './ingest/ingestWorker.ts';
import { LiveFeed } from './live/liveFeed.ts';
import type { Logger } from './logger.ts';
import { LocalFolderMediaStore } from './media/localFolderMediaStore.ts';
import { registerMediaRoutes } from './media/mediaRoutes.ts';
import { createMetrics } from './metrics.ts';
import { createOutboundProcessor } from './outbound/outboundWorker.ts';
import { OutboxSweeper } from './outbound/outboxSweeper.ts';
import { PeriodicTask } from './workers/periodicTask.ts';
import { closeQueues, createQueues, webhookBackoff, type QueueName } from './queues.ts';
import { createRedis } from './redis/connection.ts';
import { keyspace } from './redis/keys.ts';
import { Router, type RoutingRecord, type TeamRecord } from './routing/router.ts';
import { RoutingTimers } from './routing/routingTimers.ts';
import { RecordStore } from './store/recordStore.ts';
import { AccountDirectory } from './tenancy/accounts.ts';
import { AgentDirectory } from './tenancy/agents.ts';
import { VisitorChannel } from './webchat/visitorChannel.ts';
import { AttachmentDownloader } from './wechat/attachmentDownloader.ts';
import { WechatAccessTokens } from './wechat/wechatAccessTokens.ts';
import { WechatChannel } from './wechat/wechatChannel.ts';
import { EmailWebhookChannel } from './emailWebhooks/emailWebhookChannel.ts';
import { WechatInboundMedia } from './wechat/wechatInboundMedia.ts';
import { PaymentRecorder } from './wechatpay/paymentRecorder.ts';
import { PlatformCertificates } from './wechatpay/platformCertificates.ts';
import { WechatpayChannel } from './wechatpay/wechatpayChannel.ts';
import { SmsChannel } from './sms/smsChannel.ts';
import { SmsOptOuts } from './sms/smsOptOut.ts';
import { SmsReceipts } from './sms/smsReceipts.ts';
import { SmsSender } from './sms/smsSender.ts';

export const version = '0.3.8';

export interface GatewayOptions {
  settings: Settings;
  redisUrl: string;
  secretKey: string;
  log: Logger;
  role?: Role;
  /** IMAP watching: lease and scan periods, poll and backoff (tests shorten them). */
  imap?: ImapWatchersOptions & { pollMs?: number; backoffMs?: number };
  /** How long an agent socket's lease lasts unrenewed (tests shorten it). */
  agentSocketLeaseMs?: number;
  /** How webhook deliveries turn a name into addresses, checked as each connection opens (tests pass their own). */
  webhookLookup?: AddressLookup;
}

export type Gateway = Awaited<ReturnType<typeof createGateway>>;

export async function createGateway(options: GatewayOptions) {
  const { settings, log } = options;
  const role = options.role ?? settings.role;
  const runsWeb = role === 'web' || role === 'all';
  const runsWorkers = role === 'worker' || role === 'all';
  const redis: Redis = createRedis(options.redisUrl, `gateway-${role}`, { batchWrites: true });
  redis.on('error', (error) => log.warn({ err: error.message }, 'redis connection error'));
  const keys = keyspace(settings.redisPrefix);
  const metrics = createMetrics();
  // Queue adds go on an auto-pipelined connection of their own that blocking consumers never use: adds that
  // arrive while the last batch is out leave together as the next one, far cheaper for Redis than one by
  // one. The acceptor keeps a batch small (at most maxAddsInFlight adds in flight).
  const producer = createRedis(options.redisUrl, `gateway-${role}-producer`, { autoPipelining: true });
  producer.on('error', (error) => log.warn({ err: error.message }, 'redis connection error'));
  const queues = createQueues(producer, settings.redisPrefix);
  metrics.trackQueues(queues);
  metrics.trackDeliveryLanes(redis, keys.webhookDue);
  const secretBox = createSecretBox(options.secretKey);
  const publicUrl = (settings.publicUrl ?? `http://localhost:${settings.port}`).replace(/\/$/, '');

  const accounts = new AccountDirectory(redis, keys);
  const agents = new AgentDirectory(redis, keys);
  const inboxes = new InboxDirectory(redis, keys, secretBox, publicUrl);
  const conversations = new ConversationStore(redis, keys);
  const teams = new RecordStore<TeamRecord>(redis, keys, 'team');
  const router = new Router(redis, keys, teams, new RecordStore<RoutingRecord>(redis, keys, 'routing'));
  const actions = new ConversationActions(redis, keys, conversations, queues.outbound, router);
  const webhooks = new WebhookSubscriptions(redis, keys, secretBox);
  const deliveryLanes = new DeliveryLanes(redis, keys);
  let listeningPort = settings.port;
  const gatewayAddress = new GatewayAddress(publicUrl, () => listeningPort);
  let deliverer: WebhookDeliverer | undefined;
  const acceptor = new InboundAcceptor(queues.inbound);
  const contacts = new ContactUpdates(redis, keys, settings.messageRetentionDays * 86400);
  const services: ApiServices = {
    redis, keys, queues, accounts, agents, inboxes, conversations, actions, webhooks, teams, router, contacts,
  };
  const wechatTokens = new WechatAccessTokens(redis, keys, { log });
  // Attachment and media URLs are the tenant's and what they fetch is sent on or shown to the tenant:
  // private addresses only when the operator allows them (providerPrivateTargets), like other provider URLs.
  const fetchesFromTenantUrls = { allowPrivate: settings.providerPrivateTargets === 'allow' };
  const downloaders = {
    wechatReplies: new AttachmentDownloader(fetchesFromTenantUrls),
    emailReplies: new AttachmentDownloader(fetchesFromTenantUrls),
    wechatVideos: new AttachmentDownloader(fetchesFromTenantUrls),
  };
  const adapters: Record<string, ChannelAdapter> = {
    webchat: new WebchatAdapter(),
    wechat: new WechatAdapter(wechatTokens, downloaders.wechatReplies),
    email: new EmailAdapter(
      downloaders.emailReplies,
      { allowPrivateTargets: settings.providerPrivateTargets === 'allow' },
    ),
  };
  const smsOptOuts = new SmsOptOuts(redis, keys, settings.messageRetentionDays * 86400);
  const smsReceipts = new SmsReceipts(redis, keys, settings.messageRetentionDays * 86400);
  const smsSender = new SmsSender({
    redis, keys, log, optOuts: smsOptOuts, receipts: smsReceipts, publicUrl, allowPrivateTargets: settings.providerPrivateTargets === 'allow',
  });
  adapters.sms = smsSender;
  const mediaStore = new LocalFolderMediaStore(join(resolve(settings.dataDir), 'media'));

  const stoppers: (() => Promise<void>)[] = [];
  // Connection pools of the checked dispatchers. The first stopper runs last: they close after the workers that use them.
  const pools: { close(): Promise<void> }[] = [...Object.values(downloaders), smsSender];
  stoppers.push(async () => { await Promise.all(pools.map((pool) => pool.close())); });
  let httpUrl = '';
  let http: ReturnType<typeof createHttpServer> | undefined;
  let routes: ApiRegistry['routes'] = [];

  async function startWeb() {
    const registry = new ApiRegistry();
    routes = registry.routes;
    const auth = new Authenticator(redis, keys, accounts, agents, settings.adminKey);
    const serverKey = createHmac('sha256', options.secretKey).update('visitor-tokens').digest('base64');
    let visitorChannel: VisitorChannel | undefined;
    let agentChannel: AgentChannel | undefined;
    const live = new LiveFeed(redis, keys, log,
      (entry, sockets) => agentChannel!.pushToAgent(entry, sockets),
      (entry, sockets) => visitorChannel!.pushToVisitor(entry, sockets));
    visitorChannel = new VisitorChannel({ redis, keys, log, metrics, inboxes, acceptor, conversations, live, serverKey });
    const leases = new AgentSocketLeases(redis, keys, log, { graceMs: settings.agentDisconnectGraceSeconds * 1000, leaseMs: options.agentSocketLeaseMs });
    agentChannel = new AgentChannel({ log, metrics, agents, actions, conversations, live, router, leases });

    registerOperationsRoutes(registry, { redis, keys, metrics, publicUrl, version });
    registerAccountRoutes(registry, services);
    registerInboxRoutes(registry, services);
    registerAgentRoutes(registry, services);
    registerCrmRoutes(registry, services);
    registerConversationRoutes(registry, services);
    registerRoutingRoutes(registry, services);
    registerWebhookRoutes(registry, services, { lanes: deliveryLanes, allowPrivateTargets: settings.webhookPrivateTargets === 'allow', self: gatewayAddress });
    registerMediaRoutes(registry, mediaStore);
    registry.add({
      method: 'get', path: '/api/v1/agent/ws', tag: 'Agents', auth: 'agent', produces: 'WebSocket upgrade',
      summary: "An agent's live stream (token in Authorization: Bearer, or ?token=)",
    });
    visitorChannel.registerRoutes(registry);
    new WechatChannel({ inboxes, acceptor, log }).registerRoutes(registry);
    new WechatpayChannel({ inboxes, acceptor, log, certificates: new PlatformCertificates(redis, keys, log) }).registerRoutes(registry);
    new SmsChannel({ inboxes, acceptor, optOuts: smsOptOuts, receipts: smsReceipts, publicUrl, log, maxBodyBytes: settings.bodyLimitBytes }).registerRoutes(registry);
    new EmailWebhookChannel({ acceptor, media: mediaStore, redis, keys, inboxes, log }).registerRoutes(registry);
    registerDemoRoutes(registry, services, publicUrl);
    registerAgentConsoleRoute(registry);

    const app = createHttpApp({ registry, auth, log, metrics, bodyLimitBytes: settings.bodyLimitBytes });
    http = createHttpServer(app, [
      {
        pattern: /^\/api\/v1\/agent\/ws$/,
        accept: async (request) => {
          const url = new URL(request.url ?? '/', 'http://localhost');
          const token = Authenticator.bearer(request.headers.authorization) ?? url.searchParams.get('token') ?? undefined;
          const caller = await auth.identify(token);
          if (caller?.kind !== 'agent') throw new HttpError(401, 'unauthorized', 'an agent token is required');
          return (socket) => agentChannel!.handleSocket(socket, caller.agent);
        },
      },
      {
        pattern: /^\/webchat\/([A-Za-z0-9_-]{1,100})\/ws$/,
        accept: (request, match) => visitorChannel!.prepareSocket(request, match[1]!),
      },
    ], settings.wsMaxFrameBytes, log, createPushLane(registry.pushRoutes(settings.bodyLimitBytes), { log, metrics }));
    await live.start();
    leases.start();
    await new Promise<void>((resolve, reject) => {
      http!.server.once('error', reject);
      http!.server.listen(settings.port, settings.host, () => resolve());
    });
    const address = http.server.address() as AddressInfo;
    listeningPort = address.port;
    httpUrl = `http://127.0.0.1:${address.port}`;
    stoppers.push(async () => {
      // Stop taking work first, then tell sockets to reconnect elsewhere.
      const closed = new Promise<void>((resolve) => http!.server.close(() => resolve()));
      for (const client of http!.wss.clients) client.close(1001, 'server shutting down');
      http!.server.closeIdleConnections();
      setTimeout(() => http!.server.closeAllConnections(), 5000).unref();
      await closed;
      // Leases still held lapse on their own: agents who reconnect elsewhere within the grace stay online.
      await leases.stop();
      await live.stop();
    });
  }

  async function startWorkers() {
    const inboundMedia = new WechatInboundMedia({
      redis, keys, queue: queues.inbound, inboxes, tokens: wechatTokens, store: mediaStore, log,
      videoDownloads: downloaders.wechatVideos,
      allowPrivate: fetchesFromTenantUrls.allowPrivate,
    });
    pools.push(inboundMedia);
    const ingest = createIngestProcessor({
      redis, keys, retentionSeconds: settings.messageRetentionDays * 86400, router, contacts,
      payments: new PaymentRecorder(redis, keys, inboxes, settings.messageRetentionDays * 86400),
      inboundMedia,
    });
    const processors: Record<QueueName, Processor> = {
      // What ingest returns is for its callers, not for BullMQ: a completed job's return value is written to
      // Redis (and to the queue's event stream) only for the job to be removed at once.
      inbound: async (job) => { await ingest(job); },
      outbound: createOutboundProcessor({ redis, keys, log, conversations, inboxes, adapters }),
      webhooks: createLegacyWebhookJobMover(deliveryLanes, () => deliverer?.wake()),
    };
    const workers: Worker[] = [];
    for (const [name, processor] of Object.entries(processors) as [QueueName, Processor][]) {
      const worker = new Worker(name, processor, {
        connection: redis, prefix: `${settings.redisPrefix}:q`, concurrency: settings.workerConcurrency, autorun: true,
        lockDuration: settings.jobLockMs, stalledInterval: settings.jobLockMs, maxStalledCount: 5,
        settings: { backoffStrategy: (attemptsMade: number) => webhookBackoff(attemptsMade) },
      });
      worker.on('completed', (job: Job) => {
        metrics.jobsProcessed.inc({ queue: name });
        if (job.processedOn && job.finishedOn) metrics.jobDuration.observe({ queue: name }, (job.finishedOn - job.processedOn) / 1000);
      });
      worker.on('failed', (job: Job | undefined, error: Error) => {
        metrics.jobsFailed.inc({ queue: name });
        log.warn({ queue: name, jobId: job?.id, attempt: job?.attemptsMade, err: error.message }, 'job failed');
      });
      worker.on('error', (error) => log.error({ queue: name, err: error.message }, 'worker error'));
      workers.push(worker);
    }
    deliverer = new WebhookDeliverer({
      lanes: deliveryLanes, subscriptions: webhooks, log, metrics, concurrency: settings.workerConcurrency,
      perSubscription: settings.webhookSubscriptionConcurrency, allowPrivateTargets: settings.webhookPrivateTargets === 'allow', self: gatewayAddress,
      lookup: options.webhookLookup,
      policy: {
        timeoutMs: settings.webhookTimeoutMs, retryBaseMs: settings.webhookRetryBaseMs, retryMaxMs: settings.webhookRetryMaxMs,
        retryWindowMs: settings.webhookRetryHours * 3_600_000, pauseAfterMs: settings.webhookPauseAfterHours * 3_600_000,
        retentionSeconds: Math.ceil(settings.eventRetentionDays * 86_400),
      },
    });
    const dispatcher = new WebhookDispatcher(redis, keys, webhooks, deliveryLanes, log, settings.jobLockMs, () => deliverer?.wake());
    await dispatcher.start();
    deliverer.start();
    const eventRetention = new EventRetention(redis, keys, deliveryLanes, settings.eventRetentionDays * 86_400_000);
    const sweeper = new RetentionSweeper(redis, keys, settings.messageRetentionDays * 86_400_000, log, mediaStore);
    const outbox = new OutboxSweeper(redis, keys, queues.outbound, log);
    const periodicTasks = [
      new PeriodicTask('event retention trim', 5 * 60_000, () => eventRetention.trim(), log, { runAtStart: true }),
      new PeriodicTask('retention sweep', 10 * 60_000, () => sweeper.sweep(), log, { runAtStart: true }),
      new PeriodicTask('outbox sweep', 15_000, () => outbox.sweep(), log),
    ];
    for (const task of periodicTasks) task.start();
    const routingTimers = new RoutingTimers(redis, keys, log, { disconnectHandbackMs: settings.agentDisconnectHandbackSeconds * 1000 });
    routingTimers.start();
    const emailInbound = { acceptor, media: mediaStore, redis, keys, inboxes, log };
    const imapWatchers = new ImapWatchers({
      redis, keys, log, accounts, inboxes, accept: (inbox, mail, raw) => acceptParsedMail(emailInbound, inbox, mail, raw),
      allowPrivateTargets: settings.providerPrivateTargets === 'allow',
      ...(options.imap?.pollMs ? { pollMs: options.imap.pollMs } : {}), ...(options.imap?.backoffMs ? { backoffMs: options.imap.backoffMs } : {}),
    }, options.imap);
    await imapWatchers.start();
    const workerId = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const beat = () => redis.zadd(keys.workerHeartbeats, Date.now(), workerId).catch(() => undefined);
    await beat();
    const heartbeat = setInterval(beat, workerHeartbeatMs);
    stoppers.push(async () => {
      clearInterval(heartbeat);
      await imapWatchers.stop();
      (adapters.email as EmailAdapter).close();
      // close() waits for active jobs; anything unfinished is picked up again as stalled.
      await Promise.all(workers.map((w) => w.close()));
      await dispatcher.stop();
      await deliverer?.stop();
      for (const task of periodicTasks) await task.stop();
      await routingTimers.stop();
      await redis.zrem(keys.workerHeartbeats, workerId).catch(() => undefined);
    });
  }

  return {
    role, redis, keys, queues, metrics, services, acceptor, publicUrl,
    get url() { return httpUrl; },
    get httpServer() { return http?.server; },
    /** Every declared HTTP route (web role): what /openapi.json lists. */
    get routes() { return routes; },
    async start() {
      if (runsWorkers) await startWorkers();
      if (runsWeb) await startWeb();
      log.info({ role, url: httpUrl || undefined }, 'gateway started');
    },
    async stop() {
      for (const stop of stoppers.reverse()) await stop().catch((error) => log.error({ err: error }, 'stop step failed'));
      stoppers.length = 0;
      await closeQueues(queues);
      await redis.quit().catch(() => redis.disconnect());
      await producer.quit().catch(() => producer.disconnect());
      log.info('gateway stopped');
    },
  };
}
