export * as accountTransactions from './account-transactions.ts';
export * from './common.ts';
export * as identity from './identity.ts';
export * as market from './market.ts';
export * as orders from './orders.ts';
