import { postgresTarget } from '@chassis/testing';
import { transactionSpanSuite } from './transaction-spans/suite.ts';

transactionSpanSuite(await postgresTarget());
