// What an inbound-email webhook parser refuses, with the HTTP status the route answers.
export class EmailWebhookError extends Error {
  constructor(readonly status: 400 | 401, readonly code: string, message: string) {
    super(message);
    this.name = 'EmailWebhookError';
  }
}

export const malformedWebhook = (message: string) => new EmailWebhookError(400, 'invalid_request', message);
export const unauthorizedWebhook = (code: string, message: string) => new EmailWebhookError(401, code, message);
