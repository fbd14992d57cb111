import { simplebankServiceNames } from '../src/services.ts';
import { type Simplebank, startSimplebank } from '../src/system.ts';
import { describeScenarios } from './scenarios.ts';

/**
 * Every service but market data on one node; market data on a second node in the same process, on the
 * same memory broker, so that a scenario can take it down (stop that node: nobody serves its actions)
 * and bring it back while the rest runs on.
 */
const allButMarketData = simplebankServiceNames()
  .filter((name) => name !== 'market-data')
  .join(',');

describeScenarios('embedded (one process, memory transport, PGlite; market data on a node of its own)', async () => {
  const bank = await startSimplebank({
    port: 0,
    databaseUrl: 'pglite://memory',
    env: { CHASSIS_TRANSPORT: 'memory', SERVICES: allButMarketData, OPS_PORT: 'off', LOG_LEVEL: 'silent' },
    // A short outage opens the breaker quickly and lets a probe through soon after.
    services: { market: { breaker: { kind: 'consecutive', failures: 2, openMs: 5000 }, timeoutMs: 1000 } },
  });
  const startMarketData = () =>
    startSimplebank({
      port: false,
      env: {
        CHASSIS_TRANSPORT: 'memory',
        SERVICES: 'market-data',
        EXCHANGE_URL: bank.exchange!.url,
        OPS_PORT: 'off',
        LOG_LEVEL: 'silent',
      },
    });
  let marketData: Simplebank | undefined;
  try {
    marketData = await startMarketData();
  } catch (error) {
    await bank.stop();
    throw error;
  }
  return {
    url: bank.url!,
    exchangeUrl: bank.exchange!.url,
    database: bank.database,
    markets: 1,
    readiness: async () => JSON.stringify(await bank.node.readiness()),
    marketData: {
      stop: async () => {
        const running = marketData;
        marketData = undefined;
        await running?.stop();
      },
      start: async () => {
        marketData ??= await startMarketData();
      },
    },
    stop: async () => {
      await marketData?.stop();
      await bank.stop();
    },
  };
});
