import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

const processes = new URL('../src/processes.ts', import.meta.url).href;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('processGroup', () => {
  it('stops its processes when its own process is SIGKILLed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'process-group-'));
    try {
      // A child that would run for ever, and says when it drains.
      await writeFile(
        join(dir, 'child.mjs'),
        `process.on('SIGTERM', () => { console.log('draining'); process.exit(0); });
         setInterval(() => {}, 1000);
         console.log('pid ' + process.pid);`,
      );
      await writeFile(
        join(dir, 'parent.mjs'),
        `import { processGroup } from ${JSON.stringify(processes)};
         const group = processGroup({ output: (line) => console.log(line) });
         await group.start({ name: 'child', script: ${JSON.stringify(join(dir, 'child.mjs'))}, ready: 'first-line' });`,
      );
      const parent = spawn(process.execPath, [join(dir, 'parent.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
      let output = '';
      parent.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      const until = Date.now() + 30_000;
      while (!/pid (\d+)/.test(output) && Date.now() < until) await sleep(50);
      const pid = Number(/pid (\d+)/.exec(output)?.[1]);
      assert.ok(pid > 0, `the child never started: ${output}`);
      assert.ok(alive(pid));

      parent.kill('SIGKILL');
      await once(parent, 'exit');
      const deadline = Date.now() + 10_000;
      while (alive(pid) && Date.now() < deadline) await sleep(50);
      assert.equal(alive(pid), false, 'the child outlived its SIGKILLed parent');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('lets its parent exit once the processes are stopped, and a child with nothing to do exit by itself', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'process-group-'));
    try {
      await writeFile(join(dir, 'child.mjs'), `console.log('done');`);
      await writeFile(
        join(dir, 'parent.mjs'),
        `import { processGroup } from ${JSON.stringify(processes)};
         const group = processGroup({ output: () => {} });
         const child = await group.start({ name: 'child', script: ${JSON.stringify(join(dir, 'child.mjs'))} });
         await child.exited;
         console.log('child exited with ' + child.child.exitCode);`,
      );
      const parent = spawn(process.execPath, [join(dir, 'parent.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
      let output = '';
      parent.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      const [code] = (await Promise.race([once(parent, 'exit'), sleep(20_000).then(() => ['timeout'])])) as [
        number | string,
      ];
      assert.equal(code, 0, `parent did not exit: ${output}`);
      assert.match(output, /child exited with 0/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
