import { writeKubernetesManifests } from '@chassis/deploy';
import { KUBERNETES_DIR, newsportalManifests } from './kubernetes.ts';

/** `npm run deploy:generate:newsportal`: writes the News portal's Kubernetes base, and the overlays' TLS patches, from its topology. */
const files = newsportalManifests();
await writeKubernetesManifests(KUBERNETES_DIR, files);
console.log(`wrote ${[...files.keys()].join(', ')} to ${KUBERNETES_DIR}`);
