import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeKubernetesFiles } from '@chassis/deploy';
import { KUBERNETES_BASE_DIR, KUBERNETES_DIR, newsportalBaseFiles, newsportalOverlayFiles } from './kubernetes.ts';

/** `npm run deploy:generate:newsportal`: writes the News portal's Kubernetes base, and the overlays' TLS patches, from its topology. */
const files = newsportalBaseFiles();
await writeKubernetesFiles(KUBERNETES_BASE_DIR, files);
console.log(`wrote ${[...files.keys()].join(', ')} to ${KUBERNETES_BASE_DIR}`);
// Only these files: the overlays' other files are written by hand.
const overlayFiles = newsportalOverlayFiles();
for (const [file, text] of overlayFiles) {
  await mkdir(dirname(join(KUBERNETES_DIR, file)), { recursive: true });
  await writeFile(join(KUBERNETES_DIR, file), text);
}
console.log(`wrote ${[...overlayFiles.keys()].join(', ')} to ${KUBERNETES_DIR}`);
