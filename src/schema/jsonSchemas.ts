// The published JSON Schemas come from the same zod schemas as the types.
import { z } from 'zod';
import { eventSchema } from './event.ts';
import { messageSchema } from './message.ts';

export function publishedSchemas(): Record<string, unknown> {
  return {
    message: { $id: 'https://channel-gateway.dev/schemas/message.json', ...z.toJSONSchema(messageSchema) },
    event: { $id: 'https://channel-gateway.dev/schemas/event.json', ...z.toJSONSchema(eventSchema) },
  };
}
