// `npm run build` compiles TypeScript to dist/; the files the code reads beside itself at run time
// (Lua scripts, the widget, the agent console) are copied next to the compiled code here.
import { cpSync } from 'node:fs';

const assets = ['src/commands', 'adapters/webchat/widget', 'src/agents/console'];
for (const folder of assets) {
  cpSync(new URL(`../${folder}`, import.meta.url), new URL(`../dist/${folder}`, import.meta.url), {
    recursive: true,
    filter: (source) => !source.endsWith('.ts'),
  });
  console.log(`dist/${folder}`);
}
