// What the API routes are given: the gateway's services, nothing else.
import type { Queues } from '../queues.ts';
import type { ContactUpdates } from '../contacts/contactUpdates.ts';
import type { ConversationActions } from '../conversations/conversationActions.ts';
import type { ConversationStore } from '../conversations/conversationStore.ts';
import type { WebhookSubscriptions } from '../events/webhookSubscriptions.ts';
import type { InboxDirectory } from '../inboxes/inboxDirectory.ts';
import type { AccountDirectory } from '../tenancy/accounts.ts';
import type { AgentDirectory } from '../tenancy/agents.ts';
import type { Redis } from 'ioredis';
import type { Keyspace } from '../redis/keys.ts';
import type { RecordStore } from '../store/recordStore.ts';
import type { Router, TeamRecord } from '../routing/router.ts';


export interface ApiServices {
  redis: Redis;
  keys: Keyspace;
  queues: Queues;
  accounts: AccountDirectory;
  agents: AgentDirectory;
  inboxes: InboxDirectory;
  teams: RecordStore<TeamRecord>;
  router: Router;
  contacts: ContactUpdates;
  conversations: ConversationStore;
  actions: ConversationActions;
  webhooks: WebhookSubscriptions;
}
