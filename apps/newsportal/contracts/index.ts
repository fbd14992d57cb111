export * from './common.ts';
export * as news from './news.ts';
export * as orchestrator from './orchestrator.ts';
export * as recommendation from './recommendation.ts';
export * as users from './users.ts';
