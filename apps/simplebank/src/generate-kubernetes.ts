import { writeKubernetesFiles } from '@chassis/deploy';
import { KUBERNETES_BASE_DIR, simplebankBaseFiles } from './kubernetes.ts';

/** `npm run deploy:generate`: writes SimpleBank's Kubernetes base from its topology. */
const files = simplebankBaseFiles();
await writeKubernetesFiles(KUBERNETES_BASE_DIR, files);
console.log(`wrote ${[...files.keys()].join(', ')} to ${KUBERNETES_BASE_DIR}`);
