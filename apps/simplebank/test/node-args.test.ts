import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SIMPLEBANK_NODE_ARGS } from '../src/launcher.ts';

// `npm start` cannot import the launcher's flags, so its script repeats them: this keeps the two alike.
test("npm start runs the embedded bank with the launcher's Node.js flags", () => {
  for (const file of ['../../../package.json', '../package.json']) {
    const { scripts } = JSON.parse(readFileSync(new URL(file, import.meta.url), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const start = scripts.start!.split(' ');
    for (const flag of SIMPLEBANK_NODE_ARGS) assert.ok(start.includes(flag), `${file}'s start lacks ${flag}`);
  }
});
