// Segment counts the agent sees before sending: GSM-7 (160 / 153) with its two-septet extension
// characters, and UCS-2 (70 / 67) as soon as one character is outside the GSM alphabet.
import { describe, expect, it } from 'vitest';
import { smsSegments } from '../../../adapters/sms/smsSegments.ts';

describe('SMS segments', () => {
  it('counts GSM-7', () => {
    expect(smsSegments('a'.repeat(160))).toMatchObject({ encoding: 'GSM-7', units: 160, segments: 1, remaining: 0 });
    expect(smsSegments('a'.repeat(161))).toMatchObject({ encoding: 'GSM-7', segments: 2, perSegment: 153 });
    expect(smsSegments('€'.repeat(80))).toMatchObject({ encoding: 'GSM-7', units: 160, segments: 1 });
    expect(smsSegments('')).toMatchObject({ segments: 1, units: 0 });
  });

  it('counts UCS-2 once one character is outside GSM-7', () => {
    expect(smsSegments('您好'.repeat(35))).toMatchObject({ encoding: 'UCS-2', units: 70, segments: 1 });
    expect(smsSegments('a'.repeat(70) + 'é'.repeat(0) + 'ç')).toMatchObject({ encoding: 'UCS-2', units: 71, segments: 2, perSegment: 67 });
    expect(smsSegments('👋')).toMatchObject({ encoding: 'UCS-2', units: 2 });
  });
});
