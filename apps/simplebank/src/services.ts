import { accountTransactionsService } from '../services/account-transactions/service.ts';
import { identityService } from '../services/identity/service.ts';
import { marketService } from '../services/market/service.ts';
import { ordersService } from '../services/orders/service.ts';

/** Every SimpleBank service this program can host; `SERVICES` picks which a node runs. */
export function simplebankServices(options: { secret: string }) {
  return [identityService({ secret: options.secret }), ordersService(), accountTransactionsService(), marketService()];
}
