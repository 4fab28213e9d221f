// Channel ids the CRM writes become the form inbound messages carry, or a 400.
import { describe, expect, it } from 'vitest';
import { canonicalChannelId } from '../../src/crm/channelIdentity.ts';

describe('canonicalChannelId', () => {
  it('writes phone numbers in E.164 and email addresses in lower case', () => {
    expect(canonicalChannelId('sms', '+86 138 0013 8000')).toBe('+8613800138000');
    expect(canonicalChannelId('sms', '+1 (415) 555-2671')).toBe('+14155552671');
    expect(canonicalChannelId('sms', '0044 20 7946 0958')).toBe('+442079460958');
    expect(canonicalChannelId('email', ' Li.Lei@Example.COM ')).toBe('li.lei@example.com');
    expect(canonicalChannelId('wechat', 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o')).toBe('oUpF8uMuAJO_M2pxb1Q9zNjWeS6o');
  });

  it('refuses what cannot be an id on the channel', () => {
    for (const [channel, value] of [['sms', '13800138000'], ['sms', '+1 555'], ['sms', '+86 abc'], ['email', 'not-an-address'], ['wechat', 'o x'], ['webchat', '../x']] as const) {
      expect(() => canonicalChannelId(channel, value), `${channel} ${value}`).toThrow(/channelId/);
    }
  });
});
