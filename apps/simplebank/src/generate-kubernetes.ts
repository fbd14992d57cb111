import { writeKubernetesManifests } from '@chassis/deploy';
import { KUBERNETES_DIR, simplebankManifests } from './kubernetes.ts';

/** `npm run deploy:generate`: writes SimpleBank's Kubernetes base, and the overlays' TLS patches, from its topology. */
const files = simplebankManifests();
await writeKubernetesManifests(KUBERNETES_DIR, files);
console.log(`wrote ${[...files.keys()].join(', ')} to ${KUBERNETES_DIR}`);
