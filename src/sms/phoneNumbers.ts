// One person is one contact whichever provider carries them: every number becomes E.164, national
// numbers read in the inbox's default region, international digits (Vonage's msisdn) with their +.
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js';

/** E.164 for a sender's number, or undefined when it is no phone number (an alphanumeric sender, junk). */
export function toE164(raw: string, options: { defaultRegion?: string; countryCode?: string } = {}): string | undefined {
  const trimmed = raw.trim();
  if (!/^[+\d][\d\s().-]{2,30}$/.test(trimmed)) return undefined;
  let candidate = trimmed.replace(/^00/, '+');
  if (options.countryCode && !candidate.startsWith('+')) candidate = `+${options.countryCode.replace(/^\+/, '')}${candidate.replace(/^0+/, '')}`;
  const parsed = candidate.startsWith('+')
    ? parsePhoneNumberFromString(candidate)
    : parsePhoneNumberFromString(candidate, options.defaultRegion as CountryCode | undefined);
  if (!parsed || !parsed.isPossible()) return undefined;
  return parsed.number;
}

/** The other end of an inbound SMS (the inbox's own number, a short code or a dest_code): E.164 when it is one. */
export function ownNumber(raw: string, defaultRegion?: string): string {
  return toE164(raw, { defaultRegion }) ?? raw.trim().slice(0, 512);
}
