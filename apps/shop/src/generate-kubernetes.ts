import { writeKubernetesManifests } from '@chassis/deploy';
import { SHOP_KUBERNETES_DIR, shopManifests } from './kubernetes.ts';

/** `npm run deploy:generate:shop`: writes the Shop's Kubernetes base, and the overlays' TLS patches, from its topology. */
const files = shopManifests();
await writeKubernetesManifests(SHOP_KUBERNETES_DIR, files);
console.log(`wrote ${[...files.keys()].join(', ')} to ${SHOP_KUBERNETES_DIR}`);
