import { readFileSync } from 'node:fs';

/**
 * Where a process's CPU went, by package, module and function, from either of two profiles:
 *
 * - a V8 `.cpuprofile` (`--cpu-prof`, e.g. `BENCH_DISTRIBUTED_NODE_ARGS="--cpu-prof --cpu-prof-dir=prof"`):
 *   `node src/profile-summary.ts prof/CPU….cpuprofile [fromSeconds] [toSeconds]`. Its samples are taken
 *   on wall-clock time: on a loaded machine a process that is preempted right after a syscall has the
 *   whole wait charged to that syscall (`writev`, `writeBuffer` swell), so read its shares of JS work,
 *   not its native ones. The window (seconds from the profile's start) leaves out the start-up.
 * - `perf script -F tid,ip,sym` of a `perf record -e cpu-clock -g` of processes run with
 *   `--perf-basic-prof-only-functions`: on-CPU samples only, the true split. Each sample is charged to
 *   its first JavaScript frame (the builtins, C++ and kernel work under it are that function's cost):
 *   `node src/profile-summary.ts perf.script [only-samples-whose-stack-contains]`.
 */

type Tally = Map<string, number>;
const add = (tally: Tally, key: string, amount: number) => tally.set(key, (tally.get(key) ?? 0) + amount);

function moduleOf(url: string): string {
  const npm = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (npm) return `npm:${npm[1]}`;
  const own = url.match(/(packages|apps)\/([^/]+)\/(?:src\/|services\/)?(.*)$/);
  if (own) return `${own[1]}/${own[2]}/${own[3]}`;
  return url || '(native)';
}

function packageOf(module: string): string {
  if (module.startsWith('packages/') || module.startsWith('apps/')) return module.split('/').slice(0, 2).join('/');
  if (module.startsWith('node:')) return 'node:internal';
  return module;
}

function print(title: string, tally: Tally, total: number, unit: (n: number) => string, top: number): void {
  console.log(`\n== ${title}`);
  for (const [key, n] of [...tally].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${unit(n).padStart(9)} ${((100 * n) / total).toFixed(1).padStart(5)}%  ${key}`);
  }
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

function summariseCpuProfile(file: string, fromSeconds: number, toSeconds: number): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const byFunction: Tally = new Map();
  const byModule: Tally = new Map();
  const byPackage: Tally = new Map();
  let at = 0;
  let total = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (at / 1e6 < fromSeconds || at / 1e6 > toSeconds) continue;
    const { functionName, url, lineNumber } = byId.get(profile.samples[i]!)!.callFrame;
    total += delta;
    if (functionName === '(idle)') {
      idle += delta;
      continue;
    }
    const module = url ? moduleOf(url) : functionName;
    add(byFunction, `${functionName || '(anonymous)'} ${url ? `${moduleOf(url)}:${lineNumber + 1}` : ''}`, delta);
    add(byModule, module, delta);
    add(byPackage, url ? packageOf(module) : functionName, delta);
  }
  const busy = total - idle;
  const ms = (n: number) => `${(n / 1000).toFixed(0)} ms`;
  console.log(`${file}: ${ms(total)} sampled, ${ms(busy)} busy (shares below are of busy time)`);
  print('self time by package', byPackage, busy, ms, 25);
  print('self time by module', byModule, busy, ms, 40);
  print('self time by function', byFunction, busy, ms, 50);
}

function summarisePerfScript(file: string, only: string | undefined): void {
  const byFunction: Tally = new Map();
  const byPackage: Tally = new Map();
  const inclusive: Tally = new Map();
  let total = 0;
  for (const block of readFileSync(file, 'utf8').split('\n\n')) {
    const frames = block
      .split('\n')
      .slice(1)
      .map((line) => line.trim().replace(/^[0-9a-f]+\s+/, ''))
      .filter(Boolean);
    if (frames.length === 0 || (only && !frames.some((frame) => frame.includes(only)))) continue;
    total++;
    const js = frames.filter((frame) => frame.startsWith('JS:'));
    const urlOf = (frame: string) => frame.replace(/^JS:\S*\s+/, '').replace(/:\d+:\d+$/, '');
    const first = js[0];
    add(
      byFunction,
      first
        ? first.replace(/^JS:\S?'?/, '').replace(/file:\/\/\S*?\/(?=node_modules|packages|apps)/, '')
        : `(no JS frame) ${frames[0]}`,
      1,
    );
    add(byPackage, first ? packageOf(moduleOf(urlOf(first))) : '(no JS frame)', 1);
    for (const name of new Set(js.map((frame) => packageOf(moduleOf(urlOf(frame)))))) add(inclusive, name, 1);
  }
  const count = (n: number) => String(n);
  console.log(`${file}: ${total} on-CPU samples`);
  print('self (first JS frame) by package', byPackage, total, count, 25);
  print('inclusive by package', inclusive, total, count, 25);
  print('self (first JS frame) by function', byFunction, total, count, 50);
}

const [file, a, b] = process.argv.slice(2);
if (!file) {
  console.error(
    'usage: node src/profile-summary.ts <file.cpuprofile> [fromSeconds] [toSeconds] | <perf.script> [filter]',
  );
  process.exit(2);
}
if (file.endsWith('.cpuprofile')) summariseCpuProfile(file, Number(a ?? 0), Number(b ?? Number.POSITIVE_INFINITY));
else summarisePerfScript(file, a);
