import { accountTransactionsService } from '../services/account-transactions/service.ts';
import { alertsService } from '../services/alerts/service.ts';
import { customerOrdersService } from '../services/customer-orders/service.ts';
import { feesService } from '../services/fees/service.ts';
import { type HoldingsOptions, holdingsService } from '../services/holdings/service.ts';
import { identityService } from '../services/identity/service.ts';
import { investmentStrategiesService } from '../services/investment-strategies/service.ts';
import { type MarketOptions, marketService } from '../services/market/service.ts';
import { marketDataService } from '../services/market-data/service.ts';
import { notificationsService } from '../services/notifications/service.ts';
import { type OrdersOptions, ordersService } from '../services/orders/service.ts';
import { type PaymentsOptions, paymentsService } from '../services/payments/service.ts';
import { placeStrategyOrdersService } from '../services/place-strategy-orders/service.ts';

export interface SimplebankServicesOptions {
  /** The HS256 secret identity signs tokens with. */
  secret: string;
  /** The stock exchange's base URL (the simulator's, by default). */
  exchangeUrl: string;
  orders?: OrdersOptions;
  payments?: Omit<PaymentsOptions, 'secret'>;
  market?: Omit<MarketOptions, 'exchangeUrl'>;
  /** How often market data fetches prices. Default 1000 ms. */
  priceRefreshMs?: number;
  /** Holdings' timeout, retries and breaker on its calls to the ledger and market data. */
  holdings?: HoldingsOptions;
}

/** Every SimpleBank service this program can host; `SERVICES` picks which a node runs. */
export function simplebankServices(options: SimplebankServicesOptions) {
  return [
    identityService({ secret: options.secret }),
    ordersService(options.orders),
    accountTransactionsService(),
    marketService({ ...options.market, exchangeUrl: options.exchangeUrl }),
    marketDataService({ exchangeUrl: options.exchangeUrl, refreshMs: options.priceRefreshMs }),
    feesService({ secret: options.secret }),
    customerOrdersService(),
    holdingsService(options.holdings),
    paymentsService({ ...options.payments, secret: options.secret }),
    notificationsService(),
    alertsService(),
    investmentStrategiesService(),
    placeStrategyOrdersService({ secret: options.secret }),
  ];
}

/** The names of SimpleBank's services, for `SERVICES` lists and for tooling that must know them all. */
export function simplebankServiceNames(): string[] {
  // Defining the services does no I/O: the options only reach them when they start.
  return simplebankServices({ secret: 'names only', exchangeUrl: 'http://names.only' }).map((service) => service.name);
}
