// An account's routing: the default queue's settings and its rules (first match wins), as zod schemas,
// their validation against the account's teams, and the matching of a new conversation to a rule.
import { RE2JS } from 're2js';
import { z } from 'zod';
import { channelSchema, type Channel } from '../schema/message.ts';

export const strategySchema = z.enum(['least_busy', 'round_robin', 'longest_idle', 'manual'])
  .describe('least_busy: fewest conversations, then longest idle; round_robin: in turn; longest_idle: longest since their last assignment; manual: agents take from the queue');
export type Strategy = z.infer<typeof strategySchema>;

const clock = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$|^24:00$/, 'HH:MM');
const weekdays = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const interval = z.object({ from: clock, to: clock }).refine((i) => i.from < i.to, 'from must be before to');

export const businessHoursSchema = z.object({
  timezone: z.string().refine(isTimeZone, 'an IANA time zone such as Asia/Shanghai').default('UTC'),
  weekly: z.partialRecord(z.enum(weekdays), z.array(interval).max(10)).describe('open intervals per weekday, local time'),
  holidays: z.array(z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'YYYY-MM-DD')).max(366).default([]).describe('closed all day'),
});
export type BusinessHours = z.infer<typeof businessHoursSchema>;

const attributeValue = z.union([z.string().max(200), z.number(), z.boolean()]);
const ruleConditions = z.object({
  inboxIds: z.array(z.string().max(100)).min(1).max(100).optional(),
  channels: z.array(channelSchema).min(1).optional(),
  contactAttributes: z.record(z.string().max(100), z.union([attributeValue, z.array(attributeValue).max(50)])).optional()
    .describe('each attribute equals the value (or one of the values); e.g. {"vip": true, "language": ["zh", "zh-CN"]}'),
  contactTags: z.array(z.string().max(100)).min(1).max(50).optional().describe('the contact has at least one of these tags (attribute "tags")'),
  keywords: z.array(z.string().min(1).max(100)).min(1).max(100).optional().describe("the first message's text contains one (case-insensitive)"),
  pattern: z.string().min(1).max(200).refine(isRegExp, 'a valid RE2 regular expression (no backreferences or lookaround)').optional()
    .describe("the first message's text matches (case-insensitive; RE2 syntax, matched in linear time)"),
  businessHours: z.object({ teamId: z.string().max(100), open: z.boolean() }).optional()
    .describe("the team's business hours are open (true) or closed (false) now"),
}).strict();

const targetSchema = z.object({
  teamId: z.string().max(100).describe("a team id, or 'default' for every agent of the account"),
  timeoutSeconds: z.number().int().min(1).max(86_400).optional().describe('overflow: waiting this long moves the conversation to the next target'),
}).strict();

const targetsSchema = z.array(targetSchema).min(1).max(10);

export const routingRuleSchema = z.object({
  name: z.string().trim().min(1).max(200),
  when: ruleConditions.default({}),
  targets: targetsSchema,
  priority: z.number().int().min(0).max(100).default(0).describe('higher waits less: queues order by priority, then waiting time'),
}).strict();
export type RoutingRule = z.infer<typeof routingRuleSchema>;

export const routingSettingsSchema = z.object({
  strategy: strategySchema.default('least_busy').describe("the 'default' queue's strategy (every agent of the account)"),
  offerTimeoutSeconds: z.number().int().min(0).max(3600).default(0).describe("'default' queue: 0 assigns directly; otherwise the agent must accept within this time"),
  stickyWindowMinutes: z.number().int().min(0).max(525_600).default(0).describe("prefer the contact's last agent (online, with room) within this time; 0 = off"),
  reopenWindowMinutes: z.number().int().min(0).max(525_600).default(0).describe('a new message this soon after a resolve reopens the conversation; 0 = always a new one'),
  rules: z.array(routingRuleSchema).max(200).default([]),
  fallback: z.object({ targets: targetsSchema, priority: z.number().int().min(0).max(100).default(0) }).strict().optional()
    .describe("where conversations go when no rule matches (absent: the 'default' queue)"),
}).strict();
export type RoutingSettings = z.infer<typeof routingSettingsSchema>;

export interface TeamHours { id: string; businessHours?: BusinessHours }

/** Problems with settings that zod cannot see: unknown teams, overflow cycles, hours that do not exist. */
export function routingProblems(settings: RoutingSettings, teams: Map<string, TeamHours>): string[] {
  const problems: string[] = [];
  const checkTargets = (where: string, targets: { teamId: string; timeoutSeconds?: number }[]) => {
    const seen = new Set<string>();
    const last = targets.at(-1);
    if (last?.timeoutSeconds !== undefined) problems.push(`${where}.targets[${targets.length - 1}].timeoutSeconds: the last target has no next one to overflow to`);
    targets.forEach((t, i) => {
      if (t.teamId !== 'default' && !teams.has(t.teamId)) problems.push(`${where}.targets[${i}].teamId: unknown team ${t.teamId}`);
      if (seen.has(t.teamId)) problems.push(`${where}.targets[${i}].teamId: ${t.teamId} appears twice, overflow would cycle back to it`);
      seen.add(t.teamId);
    });
  };
  settings.rules.forEach((rule, i) => {
    checkTargets(`rules[${i}]`, rule.targets);
    const hours = rule.when.businessHours;
    if (hours) {
      const team = teams.get(hours.teamId);
      if (!team) problems.push(`rules[${i}].when.businessHours.teamId: unknown team ${hours.teamId}`);
      else if (!team.businessHours) problems.push(`rules[${i}].when.businessHours.teamId: team ${hours.teamId} has no businessHours`);
    }
  });
  if (settings.fallback) checkTargets('fallback', settings.fallback.targets);
  return problems;
}

/** The ids of teams the settings refer to (a team in use cannot be deleted). */
export function teamsReferenced(settings: RoutingSettings): Set<string> {
  const ids = new Set<string>();
  for (const rule of settings.rules) {
    for (const t of rule.targets) ids.add(t.teamId);
    if (rule.when.businessHours) ids.add(rule.when.businessHours.teamId);
  }
  for (const t of settings.fallback?.targets ?? []) ids.add(t.teamId);
  ids.delete('default');
  return ids;
}

export interface RoutingContext {
  inboxId: string;
  channel: Channel;
  contactAttributes: Record<string, unknown>;
  text: string;
  now: Date;
}

/** The first rule whose every condition holds, or undefined. */
export function matchRule(rules: RoutingRule[], context: RoutingContext, teams: Map<string, TeamHours>): RoutingRule | undefined {
  // Only the start of a long message is looked at: enough for keywords, bounded for user-supplied patterns.
  const text = context.text.slice(0, 2000);
  const lower = text.toLowerCase();
  return rules.find(({ when }) =>
    (!when.inboxIds || when.inboxIds.includes(context.inboxId)) &&
    (!when.channels || when.channels.includes(context.channel)) &&
    (!when.contactAttributes || Object.entries(when.contactAttributes).every(([name, wanted]) =>
      (Array.isArray(wanted) ? wanted : [wanted]).some((v) => context.contactAttributes[name] === v))) &&
    (!when.contactTags || hasAnyTag(context.contactAttributes.tags, when.contactTags)) &&
    (!when.keywords || when.keywords.some((k) => lower.includes(k.toLowerCase()))) &&
    (!when.pattern || compiled(when.pattern).matcher(text).find()) &&
    (!when.businessHours || isOpen(teams.get(when.businessHours.teamId)?.businessHours, context.now) === when.businessHours.open));
}

function hasAnyTag(tags: unknown, wanted: string[]): boolean {
  return Array.isArray(tags) && tags.some((t) => typeof t === 'string' && wanted.includes(t));
}

/** Whether business hours are open at an instant (a team without hours is always open). */
export function isOpen(hours: BusinessHours | undefined, at: Date): boolean {
  if (!hours) return true;
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: hours.timezone, year: 'numeric', month: '2-digit', day: '2-digit', weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).formatToParts(at).map((p) => [p.type, p.value]));
  if (hours.holidays.includes(`${parts.year}-${parts.month}-${parts.day}`)) return false;
  const day = parts.weekday!.toLowerCase().slice(0, 3) as (typeof weekdays)[number];
  const time = `${parts.hour}:${parts.minute}`;
  return (hours.weekly[day] ?? []).some((i) => time >= i.from && time < i.to);
}

function isTimeZone(zone: string): boolean {
  try { new Intl.DateTimeFormat('en-US', { timeZone: zone }); return true; } catch { return false; }
}

// Patterns are the accounts' own: RE2 (re2js, pure JS) matches in linear time, so no pattern can stall
// the shared workers the way a backtracking one (`^(a|a)+$`) would.
const compiledPatterns = new Map<string, RE2JS>();
function compiled(pattern: string): RE2JS {
  let re = compiledPatterns.get(pattern);
  if (!re) {
    if (compiledPatterns.size > 1000) compiledPatterns.clear();
    re = RE2JS.compile(pattern, RE2JS.CASE_INSENSITIVE);
    compiledPatterns.set(pattern, re);
  }
  return re;
}

function isRegExp(pattern: string): boolean {
  try { compiled(pattern); return true; } catch { return false; }
}
