// JSON logs (pino) that never carry a secret, a full phone number or a full email address.
import { pino, type Logger } from 'pino';

export type { Logger };

const phonePattern = /\+?\d[\d\s().-]{6,}\d/g;
const emailPattern = /([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})/g;

/** Masks phone numbers (keeps the last 3 digits) and emails (keeps the first letter and the domain). */
export function maskPersonalData(text: string): string {
  return maskPhoneNumbers(maskEmailAddresses(text));
}

/** Emails keep their first letter and their domain. */
export function maskEmailAddresses(text: string): string {
  return text.replace(emailPattern, (_m, first: string, domain: string) => `${first}***@${domain}`);
}

// A dotted-quad IPv4 address (each part 0-255, not part of a longer run of digits and dots).
const ipv4Pattern = /(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\d|\.\d)/g;

/** Phone numbers (7 digits or more) keep their last 3 digits; IPv4 addresses are not phone numbers and stay readable. */
export function maskPhoneNumbers(text: string): string {
  if (!text.includes('.')) return maskPhoneRuns(text);
  let out = '';
  let from = 0;
  for (const ip of text.matchAll(ipv4Pattern)) {
    out += maskPhoneRuns(text.slice(from, ip.index)) + ip[0];
    from = ip.index + ip[0].length;
  }
  return out + maskPhoneRuns(text.slice(from));
}

function maskPhoneRuns(text: string): string {
  return text.replace(phonePattern, (match) => {
    // An ISO date (2024-05-01…) is not a phone number, but what follows it may be one.
    const date = /^\d{4}-\d{2}-\d{2}(?!\d)/.exec(match)?.[0];
    if (date) return date + maskPhoneRuns(match.slice(date.length));
    const digits = match.replace(/\D/g, '');
    if (digits.length < 7) return match;
    return `${match.startsWith('+') ? '+' : ''}***${digits.slice(-3)}`;
  });
}

function maskDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return maskPersonalData(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    // Stays an Error (pino's err serializer then names its type and appends causes), with its
    // message, stack (which repeats the message) and every other own field masked.
    const masked = Object.create(Object.getPrototypeOf(value) as object) as Error;
    for (const key of Object.getOwnPropertyNames(value)) {
      Object.defineProperty(masked, key, { value: maskDeep((value as unknown as Record<string, unknown>)[key], depth + 1), enumerable: true, writable: true, configurable: true });
    }
    return masked;
  }
  if (Array.isArray(value)) return value.map((v) => maskDeep(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = maskDeep(v, depth + 1);
  return out;
}

const secretPaths = [
  'credentials', '*.credentials', 'password', '*.password', 'pass', '*.pass', 'token', '*.token',
  'secret', '*.secret', 'apiKey', '*.apiKey', 'authorization', '*.authorization', 'headers.authorization',
  'req.headers.authorization', 'req.headers.cookie', 'visitorToken', '*.visitorToken',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: secretPaths, censor: '[redacted]' },
      formatters: { log: (object) => maskDeep(object) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          const masked = args.map((a) => (typeof a === 'string' ? maskPersonalData(a) : a)) as Parameters<typeof method>;
          method.apply(this, masked);
        },
      },
    },
    destination,
  );
}
