import { accountTransactionsService } from '../services/account-transactions/service.ts';
import { marketService } from '../services/market/service.ts';
import { ordersService } from '../services/orders/service.ts';

/** Every SimpleBank service this program can host; `SERVICES` picks which a node runs. */
export function simplebankServices() {
  return [ordersService(), accountTransactionsService(), marketService()];
}
