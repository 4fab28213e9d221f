// A CRM endpoint for the webhook tests, on 127.0.0.1: records every request; each path answers a
// scripted list of answers (status, delay, Retry-After, body size), then 200. Deliveries are checked
// the way a CRM would: standardwebhooks verifies the signature, the cloudevents SDK reads the event.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HTTP, type CloudEvent } from 'cloudevents';
import { Webhook } from 'standardwebhooks';

export interface Delivery { path: string; headers: IncomingHttpHeaders; body: string; status: number; at: number }
export interface Answer { status?: number; delayMs?: number; retryAfter?: string; bodyBytes?: number }

export class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  /** Requests received and not answered yet. */
  open = 0;
  private readonly scripted = new Map<string, Answer[]>();
  private readonly always = new Map<string, Answer>();
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const path = request.url ?? '/';
        const answer = this.scripted.get(path)?.shift() ?? this.always.get(path) ?? {};
        const status = answer.status ?? 200;
        this.deliveries.push({ path, headers: request.headers, body: Buffer.concat(chunks).toString('utf8'), status, at: Date.now() });
        this.open++;
        response.once('close', () => { this.open--; });
        const reply = () => {
          if (response.destroyed) return;
          const headers: Record<string, string> = { 'content-type': 'text/plain' };
          if (answer.retryAfter) headers['retry-after'] = answer.retryAfter;
          response.writeHead(status, headers);
          if (answer.bodyBytes) {
            // A huge answer, written as fast as the client reads it.
            const block = Buffer.alloc(64 * 1024, 120);
            let left = answer.bodyBytes;
            const pump = () => {
              while (left > 0) {
                left -= block.length;
                if (!response.write(block)) { response.once('drain', pump); return; }
              }
              response.end();
            };
            response.on('error', () => undefined);
            pump();
          } else response.end(String(status));
        };
        if (answer.delayMs) setTimeout(reply, answer.delayMs).unref(); else reply();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The next requests to `path` get these answers, in turn; then 200 (or what `always` says). */
  answer(path: string, answers: (number | Answer)[]): void {
    this.scripted.set(path, answers.map((a) => (typeof a === 'number' ? { status: a } : a)));
  }

  answerAlways(path: string, answer: Answer): void { this.always.set(path, answer); }

  at(path: string): Delivery[] { return this.deliveries.filter((d) => d.path === path); }

  async waitFor(what: string, done: () => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) {
        throw new Error(`webhook receiver: ${what} did not happen within ${timeoutMs} ms; got ${this.deliveries.length} requests: ${JSON.stringify(this.deliveries.slice(-20).map((d) => [d.path, d.headers['webhook-id'], d.status]))}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

/** Verifies a delivery with the standardwebhooks library (throws when no signature matches) and reads it with the cloudevents SDK. */
export function verifiedEvent(delivery: Delivery, secret: string): CloudEvent<Record<string, unknown>> {
  const headers = Object.fromEntries(Object.entries(delivery.headers).map(([k, v]) => [k, String(v)]));
  new Webhook(secret).verify(delivery.body, headers);
  return HTTP.toEvent({ headers: delivery.headers, body: delivery.body }) as CloudEvent<Record<string, unknown>>;
}

/** The event of a structured-mode delivery, without verifying (for filtering what a path received). */
export function eventOf(delivery: Delivery): { id: string; type: string; subject?: string; source: string; time: string; data: any } {
  return JSON.parse(delivery.body);
}
