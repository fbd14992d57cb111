import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import type { KubernetesObject } from './objects.ts';

export interface KubernetesFilesOptions {
  /** The first line of every file, e.g. how to regenerate it. */
  header?: string;
}

/** What a pod needs to run (the canary track takes only these); the rest routes, scales and guards it. */
const WORKLOAD_KINDS = new Set(['Deployment', 'ConfigMap', 'Job']);

/** The folder of the workloads, a kustomization of its own below the base. */
export const WORKLOADS_DIR = 'workloads';

/**
 * The objects as YAML files for Kustomize, one file per component (a service group, the migration), `---`
 * between objects. The workloads — Deployments, their ConfigMaps, the migration Job — go to `workloads/`,
 * a kustomization of its own, so that a canary overlay can take them without the Services, autoscalers,
 * budgets and policies that production already has; the base's `kustomization.yaml` lists every file.
 * Only plain `resources` lists of files: any kubectl's kustomize reads them, old ones too. Path → text.
 */
export function kubernetesFiles(
  objects: readonly KubernetesObject[],
  options: KubernetesFilesOptions = {},
): Map<string, string> {
  const byFile = new Map<string, KubernetesObject[]>();
  for (const object of objects) {
    const component = object.metadata?.labels?.['app.kubernetes.io/component'] ?? object.kind.toLowerCase();
    const file = WORKLOAD_KINDS.has(object.kind) ? `${WORKLOADS_DIR}/${component}.yaml` : `${component}.yaml`;
    byFile.set(file, [...(byFile.get(file) ?? []), object]);
  }
  const header = options.header ? `${options.header.replace(/^/gm, '# ')}\n` : '';
  const kustomization = (resources: string[]) =>
    header + toYaml({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources });
  const files = new Map<string, string>();
  const workloads = [...byFile.keys()].filter((file) => file.startsWith(`${WORKLOADS_DIR}/`));
  for (const file of [...workloads, ...[...byFile.keys()].filter((file) => !workloads.includes(file))]) {
    files.set(
      file,
      header +
        byFile
          .get(file)!
          .map((object) => toYaml(object))
          .join('---\n'),
    );
  }
  files.set(
    `${WORKLOADS_DIR}/kustomization.yaml`,
    kustomization(workloads.map((file) => file.slice(WORKLOADS_DIR.length + 1))),
  );
  files.set(
    'kustomization.yaml',
    kustomization(
      [...byFile.keys()].sort((a, b) => Number(b.startsWith(WORKLOADS_DIR)) - Number(a.startsWith(WORKLOADS_DIR))),
    ),
  );
  return files;
}

/**
 * Objects (or patches) as one YAML file, `---` between them, the header as comment lines first: e.g. an
 * overlay's `patchesStrategicMerge` file made from `tlsPatches`.
 */
export function yamlDocuments(objects: readonly unknown[], options: KubernetesFilesOptions = {}): string {
  const header = options.header ? `${options.header.replace(/^/gm, '# ')}\n` : '';
  return header + objects.map((object) => toYaml(object)).join('---\n');
}

/**
 * One object as YAML: strings that YAML 1.1 (kubectl's parser) would read as something else (`off`, `yes`,
 * `0.1`) quoted, long strings kept on one line so that diffs stay readable, shared objects written out.
 */
export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0, aliasDuplicateObjects: false, version: '1.1' });
}

/**
 * Writes the files into `dir` (paths may have a folder, `workloads/`), removing the YAML files there
 * that are no longer generated (a group renamed or dropped), so that the folder is exactly the output.
 */
export async function writeKubernetesFiles(dir: string, files: ReadonlyMap<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const existing of await readdir(dir, { recursive: true })) {
    if (existing.endsWith('.yaml') && !files.has(existing)) await rm(join(dir, existing));
  }
  for (const [file, text] of files) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), text);
  }
}
