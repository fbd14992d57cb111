/**
 * The News portal's service groups when it runs distributed: one process (or one Deployment) each.
 * The query services run alone so that one type's can stop while the others answer (a partial merge).
 */
export const processGroups: readonly { name: string; services: string; gateway?: boolean }[] = [
  { name: 'edge', services: 'news-orchestrator,recommendation', gateway: true },
  { name: 'users', services: 'users' },
  { name: 'commands', services: 'command-famous,command-politics,command-sports' },
  { name: 'query-famous', services: 'query-famous' },
  { name: 'query-politics', services: 'query-politics' },
  { name: 'query-sports', services: 'query-sports' },
];
