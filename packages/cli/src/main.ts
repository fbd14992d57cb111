import { run } from './program.ts';

/** `chassis …` (bin/chassis.js starts this on a Node that runs TypeScript). */
process.exitCode = await run(process.argv.slice(2));
