import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { KubernetesObject } from './objects.ts';

export interface KubernetesFilesOptions {
  /** The first line of every file, e.g. how to regenerate it. */
  header?: string;
}

/**
 * The objects as YAML files for Kustomize: one file per component (a service group's objects, the
 * migration's Job), `---` between objects, and a `kustomization.yaml` that lists them. File name → text.
 */
export function kubernetesFiles(
  objects: readonly KubernetesObject[],
  options: KubernetesFilesOptions = {},
): Map<string, string> {
  const byFile = new Map<string, KubernetesObject[]>();
  for (const object of objects) {
    const file = `${object.metadata?.labels?.['app.kubernetes.io/component'] ?? object.kind.toLowerCase()}.yaml`;
    byFile.set(file, [...(byFile.get(file) ?? []), object]);
  }
  const header = options.header ? `${options.header.replace(/^/gm, '# ')}\n` : '';
  const files = new Map<string, string>();
  for (const [file, inFile] of byFile) {
    files.set(file, header + inFile.map((object) => toYaml(object)).join('---\n'));
  }
  const kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [...byFile.keys()],
  };
  files.set('kustomization.yaml', header + toYaml(kustomization));
  return files;
}

/**
 * One object as YAML: strings that YAML 1.1 (kubectl's parser) would read as something else (`off`, `yes`,
 * `0.1`) quoted, long strings kept on one line so that diffs stay readable, shared objects written out.
 */
export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0, aliasDuplicateObjects: false, version: '1.1' });
}

/**
 * Writes the files into `dir`, removing the YAML files there that are no longer generated (a group
 * renamed or dropped), so that the folder is exactly the generator's output.
 */
export async function writeKubernetesFiles(dir: string, files: ReadonlyMap<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const existing of await readdir(dir)) {
    if (existing.endsWith('.yaml') && !files.has(existing)) await rm(join(dir, existing));
  }
  for (const [file, text] of files) await writeFile(join(dir, file), text);
}
