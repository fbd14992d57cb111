export * as accountTransactions from './account-transactions.ts';
export * from './common.ts';
export * as customerOrders from './customer-orders.ts';
export * as fees from './fees.ts';
export * as identity from './identity.ts';
export * as market from './market.ts';
export * as marketData from './market-data.ts';
export * as orders from './orders.ts';
