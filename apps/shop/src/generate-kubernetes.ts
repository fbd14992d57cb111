import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeKubernetesFiles } from '@chassis/deploy';
import { SHOP_KUBERNETES_BASE_DIR, SHOP_KUBERNETES_DIR, shopBaseFiles, shopOverlayFiles } from './kubernetes.ts';

/** `npm run deploy:generate:shop`: writes the Shop's Kubernetes base, and the overlays' TLS patches, from its topology. */
const files = shopBaseFiles();
await writeKubernetesFiles(SHOP_KUBERNETES_BASE_DIR, files);
console.log(`wrote ${[...files.keys()].join(', ')} to ${SHOP_KUBERNETES_BASE_DIR}`);
// Only these files: the overlays' other files are written by hand.
const overlayFiles = shopOverlayFiles();
for (const [file, text] of overlayFiles) {
  await mkdir(dirname(join(SHOP_KUBERNETES_DIR, file)), { recursive: true });
  await writeFile(join(SHOP_KUBERNETES_DIR, file), text);
}
console.log(`wrote ${[...overlayFiles.keys()].join(', ')} to ${SHOP_KUBERNETES_DIR}`);
