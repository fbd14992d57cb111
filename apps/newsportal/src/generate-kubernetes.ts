import { writeKubernetesFiles } from '@chassis/deploy';
import { KUBERNETES_BASE_DIR, newsportalBaseFiles } from './kubernetes.ts';

/** `npm run deploy:generate:newsportal`: writes the News portal's Kubernetes base from its topology. */
const files = newsportalBaseFiles();
await writeKubernetesFiles(KUBERNETES_BASE_DIR, files);
console.log(`wrote ${[...files.keys()].join(', ')} to ${KUBERNETES_BASE_DIR}`);
