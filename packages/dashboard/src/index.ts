export { DIST_DIR, ensureBuilt, isBuilt, WEB_DIR } from './build.ts';
export type { OpsConnection } from './connection.ts';
export { parseServerTotals, RedHistory, type RedPoint, type RedSeries } from './metrics.ts';
export { DASHBOARD_HEADER, type Dashboard, type DashboardOptions, startDashboard } from './server.ts';
