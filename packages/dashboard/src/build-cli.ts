import { DIST_DIR, ensureBuilt } from './build.ts';

// `npm run build -w @chassis/dashboard`: builds the browser app now rather than at first serve.
await ensureBuilt({ force: true });
console.log(`dashboard built into ${DIST_DIR}`);
