import { startExchangeSimulator } from './simulator.ts';

/**
 * The exchange simulator as its own process, so the system reaches it over the network like a real
 * exchange: `node --import tsx apps/simplebank/exchange-simulator/main.ts`. `EXCHANGE_PORT` (default
 * 9090) and `HOST` (default 127.0.0.1) say where it listens; `PUT /control` changes its knobs.
 */

const port = Number(process.env.EXCHANGE_PORT || 9090);
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  console.error(`EXCHANGE_PORT must be a port number, got ${JSON.stringify(process.env.EXCHANGE_PORT)}`);
  process.exit(1);
}

const exchange = await startExchangeSimulator({ port, host: process.env.HOST || '127.0.0.1' });
console.log(`Exchange simulator on ${exchange.url} (GET /prices, POST /orders, GET|PUT /control)`);

const shutDown = async (signal: NodeJS.Signals) => {
  console.log(`${signal}: closing the exchange simulator`);
  await exchange.close();
};
process.once('SIGTERM', shutDown);
process.once('SIGINT', shutDown);
