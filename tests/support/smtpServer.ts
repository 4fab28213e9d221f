// A real SMTP server for the email tests (npm smtp-server): takes every mail and keeps it, parsed.
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail { envelope: { from: string; to: string[] }; raw: Buffer; parsed: ParsedMail }

export interface TestSmtpServer {
  port: number;
  mails: ReceivedMail[];
  /** Resolves with the n-th mail (1-based) once it has arrived. */
  nth(n: number, timeoutMs?: number): Promise<ReceivedMail>;
  /** Refuse mail to this recipient with a 550 (a permanent failure). */
  refuse(address: string): void;
  /** Client connections open now (a pooled transport keeps its connections open between mails). */
  openConnections(): number;
  stop(): Promise<void>;
}

export async function startSmtpServer(): Promise<TestSmtpServer> {
  const mails: ReceivedMail[] = [];
  const refused = new Set<string>();
  const waiters: (() => void)[] = [];
  const server = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS'], logger: false,
    onAuth: (_auth, _session, callback) => callback(null, { user: 'gateway' }),
    onRcptTo: (address, _session, callback) => refused.has(address.address.toLowerCase())
      ? callback(Object.assign(new Error('5.1.1 user unknown'), { responseCode: 550 })) : callback(),
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', async () => {
        const raw = Buffer.concat(chunks);
        mails.push({
          envelope: { from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address) },
          raw, parsed: await simpleParser(raw),
        });
        for (const w of waiters.splice(0)) w();
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as { port: number }).port;
  return {
    port, mails,
    nth: async (n, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs;
      while (mails.length < n) {
        if (Date.now() > deadline) throw new Error(`SMTP: mail ${n} did not arrive (have ${mails.length})`);
        await new Promise<void>((resolve) => { waiters.push(resolve); setTimeout(resolve, 200); });
      }
      return mails[n - 1]!;
    },
    refuse: (address) => { refused.add(address.toLowerCase()); },
    openConnections: () => server.connections.size,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
