import { authService } from '../services/auth/service.ts';
import { type OrdersOptions, ordersService } from '../services/orders/service.ts';
import { paymentsService } from '../services/payments/service.ts';
import { productsService } from '../services/products/service.ts';
import { recommendationsService } from '../services/recommendations/service.ts';
import { reviewsService } from '../services/reviews/service.ts';
import { usersService } from '../services/users/service.ts';

export interface ShopServicesOptions {
  /** The HS256 secret auth signs tokens with and the shop's own services sign theirs with. */
  secret: string;
  /** How long a login's token lives. Default 1 hour. */
  tokenTtlSeconds?: number;
  orders?: Omit<OrdersOptions, 'secret'>;
}

/** Every service of the Shop; `SERVICES` picks which a node runs. */
export function shopServices(options: ShopServicesOptions) {
  return [
    usersService(),
    authService({ secret: options.secret, tokenTtlSeconds: options.tokenTtlSeconds }),
    productsService(),
    reviewsService(),
    recommendationsService(),
    ordersService({ ...options.orders, secret: options.secret }),
    paymentsService(),
  ];
}

/** The names of the Shop's services, for `SERVICES` lists and tooling. */
export function shopServiceNames(): string[] {
  return shopServices({ secret: 'names only' }).map((service) => service.name);
}
