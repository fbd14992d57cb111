import { NEWS_TYPES } from '../contracts/common.ts';
import { newsCommandService } from '../services/news-command/service.ts';
import { type NewsOrchestratorOptions, newsOrchestratorService } from '../services/news-orchestrator/service.ts';
import { newsQueryService } from '../services/news-query/service.ts';
import { type RecommendationOptions, recommendationService } from '../services/recommendation/service.ts';
import { type UsersOptions, usersService } from '../services/users/service.ts';

export interface NewsportalServicesOptions {
  users: UsersOptions;
  orchestrator?: NewsOrchestratorOptions;
  recommendation?: RecommendationOptions;
}

/**
 * Every News portal service this program can host; `SERVICES` picks which a node runs. Each news type
 * is a command and a query service of the same code: adding a type is adding it to NEWS_TYPES.
 */
export function newsportalServices(options: NewsportalServicesOptions) {
  return [
    usersService(options.users),
    ...NEWS_TYPES.map((type) => newsCommandService(type)),
    ...NEWS_TYPES.map((type) => newsQueryService(type)),
    newsOrchestratorService(options.orchestrator),
    recommendationService(options.recommendation),
  ];
}

/** The names of the portal's services, for `SERVICES` lists and tooling. */
export function newsportalServiceNames(): string[] {
  // Defining the services does no I/O: Redis is connected to when users starts.
  return newsportalServices({ users: { url: 'redis://names.only', keyPrefix: '' } }).map((service) => service.name);
}
