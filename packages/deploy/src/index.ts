export { type KubernetesFilesOptions, kubernetesFiles, toYaml, writeKubernetesFiles, yamlDocuments } from './files.ts';
export {
  type KubernetesManifestsOptions,
  kubernetesManifests,
  kustomizeBuild,
  staleKubernetesManifests,
  writeKubernetesManifests,
} from './manifests.ts';
export {
  appLabels,
  type KubernetesObject,
  kubernetesObjects,
  type PodPatch,
  TLS_MOUNT_PATHS,
  tlsPatches,
} from './objects.ts';
export { type AppTopology, appTopologySchema, type TlsSettings, type ValueFrom } from './topology.ts';
export { validateKubernetesObjects } from './validate.ts';
