export { type DashboardFlags, dashboard, dashboardConnection, openDashboard } from './commands/dashboard.ts';
export { deployRender, type RenderOptions, renderObjects } from './commands/deploy.ts';
export { type DevOptions, dev } from './commands/dev.ts';
export { checkName, type NewAppOptions, type NewServiceOptions, newApp, newService, placeApp } from './commands/new.ts';
export { type GatewayApi, openApiOf, openapi } from './commands/openapi.ts';
export { type CallFlags, type ConnectFlags, type Connection, connect, DEFAULT_OPS_URL } from './ops/connection.ts';
export { CliError, type Output, oneLine, processOutput } from './output.ts';
export { createProgram, type RunOptions, run } from './program.ts';
export { type App, appsIn, CHASSIS_ROOT, findApp, importFromApp, workspaceRootOf } from './workspace.ts';
