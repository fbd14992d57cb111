export * from './auth.ts';
export * from './common.ts';
export * from './orders.ts';
export * from './payments.ts';
export * from './products.ts';
export * from './recommendations.ts';
export * from './reviews.ts';
export * from './users.ts';
