import { startSimplebank } from '../src/system.ts';
import { describeScenarios } from './scenarios.ts';

describeScenarios('embedded (one process, memory transport, PGlite)', async () => {
  const bank = await startSimplebank({
    port: 0,
    databaseUrl: 'pglite://memory',
    env: { CHASSIS_TRANSPORT: 'memory', OPS_PORT: 'off', LOG_LEVEL: 'silent' },
    // A short outage opens the breaker quickly and lets a probe through soon after.
    services: { market: { breaker: { kind: 'consecutive', failures: 2, openMs: 5000 }, timeoutMs: 1000 } },
  });
  return {
    url: bank.url!,
    exchangeUrl: bank.exchange!.url,
    database: bank.database,
    markets: 1,
    readiness: async () => JSON.stringify(await bank.node.readiness()),
    stop: bank.stop,
  };
});
