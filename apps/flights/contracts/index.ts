export * from './common.ts';
export * from './flights.ts';
export * from './reservations.ts';
