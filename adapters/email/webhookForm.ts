// The form bodies providers post (multipart/form-data with files, or urlencoded), read from the exact
// bytes received. Multipart is read with busboy; field values can be kept as bytes (latin1 strings)
// for SendGrid, whose `charsets` field says how each was encoded.
import Busboy from 'busboy';
import { malformedWebhook } from './emailWebhookErrors.ts';

export interface WebhookFile { field: string; filename: string; contentType: string; content: Buffer }
export interface WebhookForm { fields: Record<string, string>; files: WebhookFile[] }

export interface ReadFormOptions {
  /** `latin1` keeps each field's bytes one to one (decode them later); default utf8. */
  fieldCharset?: 'utf8' | 'latin1';
  maxFieldBytes: number;
  maxFiles?: number;
}

export async function readWebhookForm(body: Buffer, contentType: string, options: ReadFormOptions): Promise<WebhookForm> {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded') {
    if (options.fieldCharset !== 'latin1') return { fields: Object.fromEntries(new URLSearchParams(body.toString('utf8'))), files: [] };
    // URLSearchParams would read the escapes as UTF-8; here each %XX stays the byte it names.
    const fields: Record<string, string> = {};
    for (const pair of body.toString('latin1').split('&')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      const [name, value] = [eq >= 0 ? pair.slice(0, eq) : pair, eq >= 0 ? pair.slice(eq + 1) : ''].map(percentDecodedLatin1);
      if (!(name! in fields)) fields[name!] = value!;
    }
    return { fields, files: [] };
  }
  if (type !== 'multipart/form-data') throw malformedWebhook(`expected multipart/form-data or application/x-www-form-urlencoded, got ${type || 'no content type'}`);
  return new Promise<WebhookForm>((resolve, reject) => {
    const fields: Record<string, string> = {};
    const files: WebhookFile[] = [];
    let parser: Busboy.Busboy;
    try {
      parser = Busboy({
        headers: { 'content-type': contentType },
        defCharset: options.fieldCharset ?? 'utf8',
        defParamCharset: 'utf8',
        limits: { fieldSize: options.maxFieldBytes, fileSize: options.maxFieldBytes, files: options.maxFiles ?? 200, fields: 500, parts: 1000 },
      });
    } catch (error) {
      reject(malformedWebhook(`the multipart body cannot be read: ${(error as Error).message}`));
      return;
    }
    let failed = false;
    const fail = (message: string) => {
      if (!failed) reject(malformedWebhook(message));
      failed = true;
    };
    parser.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(`the form field ${name} is larger than ${options.maxFieldBytes} bytes`);
      if (!(name in fields)) fields[name] = value;
    });
    parser.on('file', (field, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('limit', () => fail(`the file ${field} is larger than ${options.maxFieldBytes} bytes`));
      stream.on('close', () => files.push({ field, filename: options.fieldCharset === 'latin1' ? asUtf8IfValid(info.filename ?? field) : info.filename ?? field, contentType: info.mimeType || 'application/octet-stream', content: Buffer.concat(chunks) }));
    });
    parser.on('filesLimit', () => fail('too many files in the form'));
    parser.on('error', (error: Error) => fail(`the multipart body cannot be read: ${error.message}`));
    parser.on('close', () => {
      if (!failed) resolve({ fields, files });
    });
    parser.end(body);
  });
}

/** A JSON form field, or undefined when absent; malformed JSON is a 400 naming the field. */
export function jsonField<T>(fields: Record<string, string>, name: string, readAs: 'utf8' | 'latin1' = 'utf8'): T | undefined {
  const value = readAs === 'latin1' ? utf8Field(fields[name]) : fields[name];
  if (value === undefined || value.trim() === '') return undefined;
  try {
    return JSON.parse(value) as T;
  } catch {
    throw malformedWebhook(`the form field ${name} is not valid JSON`);
  }
}

function percentDecodedLatin1(value: string): string {
  return value.replace(/\+/g, ' ').replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** A field read as latin1, as the UTF-8 text it is. */
export const utf8Field = (value: string | undefined): string | undefined => (value === undefined ? undefined : Buffer.from(value, 'latin1').toString('utf8'));

// busboy reads a plain filename="…" with the field charset; browsers and providers send UTF-8 there.
function asUtf8IfValid(latin1: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(latin1, 'latin1'));
  } catch {
    return latin1;
  }
}
