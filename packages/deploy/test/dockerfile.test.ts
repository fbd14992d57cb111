import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Copy, DockerfileParser, type From, type Instruction } from 'dockerfile-ast';
import { ValidationSeverity, validate } from 'dockerfile-utils';

/**
 * No Docker engine runs here, so deploy/Dockerfile is checked rather than built: by dockerfile-utils
 * (the linter behind the Docker language server) with every rule an error, and against the repo — what
 * it copies exists and is not ignored, the default app entry exists, and the final stage keeps the
 * promises its header makes (non-root, tini as PID 1, production dependencies only).
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOCKERFILE = join(ROOT, 'deploy/Dockerfile');
const text = readFileSync(DOCKERFILE, 'utf8');
const dockerfile = DockerfileParser.parse(text);
const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'));

/** The instructions of each stage, by its `AS` name. */
function stages(): Map<string, Instruction[]> {
  const byStage = new Map<string, Instruction[]>();
  let current: Instruction[] | undefined;
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === 'FROM') {
      current = [];
      byStage.set((instruction as From).getBuildStage() ?? `stage-${byStage.size}`, current);
    }
    current?.push(instruction);
  }
  return byStage;
}

function argDefault(stage: Instruction[], name: string): string {
  for (const instruction of stage) {
    const [argument] = instruction.getArguments().map((a) => a.getValue());
    if (instruction.getKeyword() === 'ARG' && argument?.startsWith(`${name}=`)) return argument.slice(name.length + 1);
  }
  assert.fail(`no ARG ${name} with a default`);
}

describe('deploy/Dockerfile', () => {
  it('passes dockerfile-utils with every rule an error', () => {
    const strict = {
      deprecatedMaintainer: ValidationSeverity.ERROR,
      directiveCasing: ValidationSeverity.ERROR,
      emptyContinuationLine: ValidationSeverity.ERROR,
      instructionCasing: ValidationSeverity.ERROR,
      instructionCmdMultiple: ValidationSeverity.ERROR,
      instructionEntrypointMultiple: ValidationSeverity.ERROR,
      instructionHealthcheckMultiple: ValidationSeverity.ERROR,
      instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
      instructionWorkdirRelative: ValidationSeverity.ERROR,
    };
    const problems = validate(text, strict).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
    assert.deepEqual(problems, []);
    // The linter does find problems: a broken file is not waved through.
    assert.ok(validate('FROM node\nCOPY\nEXPOSE port\nFOO bar\n', strict).length >= 3);
  });

  it('copies from the context only paths that exist and that .dockerignore keeps; --from names an earlier stage', () => {
    const seen: string[] = [];
    let copies = 0;
    for (const instruction of dockerfile.getInstructions()) {
      if (instruction.getKeyword() === 'FROM') seen.push((instruction as From).getBuildStage() ?? '');
      if (instruction.getKeyword() === 'ADD') assert.fail('ADD fetches and unpacks; COPY says what it does');
      if (instruction.getKeyword() !== 'COPY') continue;
      const from = (instruction as Copy).getFromFlag()?.getValue();
      const args = instruction.getArguments().map((a) => a.getValue());
      const sources = args.slice(0, -1);
      if (from) {
        assert.ok(seen.includes(from), `COPY --from=${from} names a stage defined before it`);
        continue;
      }
      for (const source of sources) {
        copies++;
        const path = join(ROOT, source);
        assert.ok(existsSync(path), `COPY ${source}: no such path in the repo`);
        const top = source.replace(/^\.\/?/, '').split('/')[0] ?? '';
        if (top) assert.ok(!ignored.includes(top), `COPY ${source}, which .dockerignore leaves out`);
        if (source.endsWith('/')) assert.ok(statSync(path).isDirectory(), `${source} is a folder`);
      }
    }
    assert.ok(copies >= 4, `copies from the context: ${copies}`);
  });

  it('keeps what the image needs in the context and leaves out what it must not carry', () => {
    for (const needed of ['package-lock.json', 'package.json', 'packages', 'apps']) {
      assert.ok(!ignored.includes(needed), `.dockerignore must keep ${needed}`);
    }
    assert.ok(!ignored.some((line) => line.includes('package.json')), 'every package.json reaches the manifests stage');
    for (const left of ['.git', '**/node_modules', '**/.data', '**/.env']) assert.ok(ignored.includes(left), left);
  });

  it('builds SimpleBank by default, from an entry and a workspace that exist', () => {
    const byStage = stages();
    const entry = argDefault(byStage.get('runtime') ?? [], 'APP_ENTRY');
    const workspace = argDefault(byStage.get('deps') ?? [], 'APP_WORKSPACE');
    assert.equal(entry, 'apps/simplebank/src/main.ts');
    assert.ok(existsSync(join(ROOT, entry)), `${entry} exists`);
    assert.ok(existsSync(join(ROOT, workspace, 'package.json')), `${workspace} is a workspace`);
    assert.ok(entry.startsWith(`${workspace}/`), 'the entry is in the workspace whose dependencies are installed');
    const workspaces = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] })
      .workspaces;
    assert.ok(
      workspaces.some((pattern) => new RegExp(`^${pattern.replace('*', '[^/]+')}$`).test(workspace)),
      `${workspace} is one of the root's workspaces`,
    );
  });

  it('installs production dependencies only with npm ci, and runs as a non-root user under tini', () => {
    const byStage = stages();
    assert.ok(byStage.size >= 3, 'multi-stage');
    const deps = (byStage.get('deps') ?? []).map((i) => i.getTextContent()).join('\n');
    assert.match(deps, /npm ci\b[^\n]*--omit=dev/);
    const runtime = byStage.get('runtime');
    assert.ok(runtime, 'a stage named runtime');
    assert.equal([...byStage.keys()].at(-1), 'runtime', 'runtime is the last stage: the default target');
    const runtimeText = runtime.map((i) => i.getTextContent()).join('\n');
    assert.doesNotMatch(runtimeText, /npm (ci|install)/, 'no dependency installed in the final stage itself');
    const user = runtime
      .filter((i) => i.getKeyword() === 'USER')
      .at(-1)
      ?.getArguments()[0]
      ?.getValue();
    assert.ok(user && /^[1-9][0-9]*(:[1-9][0-9]*)?$/.test(user), `USER is numeric and not root (${user})`);
    const entrypoint = runtime.find((i) => i.getKeyword() === 'ENTRYPOINT')?.getTextContent() ?? '';
    assert.match(entrypoint, /\["\/usr\/bin\/tini", "--"\]/);
    const cmd = runtime.find((i) => i.getKeyword() === 'CMD')?.getTextContent() ?? '';
    assert.match(cmd, /^CMD \["node", /, 'exec form: the signal reaches node, not a shell');
  });
});
