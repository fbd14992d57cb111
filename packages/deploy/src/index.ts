export { type KubernetesFilesOptions, kubernetesFiles, toYaml, writeKubernetesFiles } from './files.ts';
export { appLabels, type KubernetesObject, kubernetesObjects } from './objects.ts';
export { type AppTopology, appTopologySchema, type ValueFrom } from './topology.ts';
export { validateKubernetesObjects } from './validate.ts';
