// Writes schemas/message.json and schemas/event.json from the zod source (npm run schemas).
import { writeFileSync } from 'node:fs';
import { publishedSchemas } from '../src/schema/jsonSchemas.ts';

for (const [name, schema] of Object.entries(publishedSchemas())) {
  writeFileSync(new URL(`../schemas/${name}.json`, import.meta.url), JSON.stringify(schema, null, 2) + '\n');
  console.log(`schemas/${name}.json`);
}
