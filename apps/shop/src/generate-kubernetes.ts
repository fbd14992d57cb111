import { writeKubernetesFiles } from '@chassis/deploy';
import { SHOP_KUBERNETES_BASE_DIR, shopBaseFiles } from './kubernetes.ts';

/** `npm run deploy:generate:shop`: writes the Shop's Kubernetes base from its topology. */
const files = shopBaseFiles();
await writeKubernetesFiles(SHOP_KUBERNETES_BASE_DIR, files);
console.log(`wrote ${[...files.keys()].join(', ')} to ${SHOP_KUBERNETES_BASE_DIR}`);
