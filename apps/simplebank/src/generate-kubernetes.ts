import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeKubernetesFiles } from '@chassis/deploy';
import { KUBERNETES_BASE_DIR, KUBERNETES_DIR, simplebankBaseFiles, simplebankOverlayFiles } from './kubernetes.ts';

/** `npm run deploy:generate`: writes SimpleBank's Kubernetes base, and the overlays' TLS patches, from its topology. */
const files = simplebankBaseFiles();
await writeKubernetesFiles(KUBERNETES_BASE_DIR, files);
console.log(`wrote ${[...files.keys()].join(', ')} to ${KUBERNETES_BASE_DIR}`);
// Only these files: the overlays' other files are written by hand.
const overlayFiles = simplebankOverlayFiles();
for (const [file, text] of overlayFiles) await writeFile(join(KUBERNETES_DIR, file), text);
console.log(`wrote ${[...overlayFiles.keys()].join(', ')} to ${KUBERNETES_DIR}`);
