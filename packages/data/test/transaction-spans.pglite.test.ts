import { pgliteTarget } from '@chassis/testing';
import { transactionSpanSuite } from './transaction-spans/suite.ts';

transactionSpanSuite(pgliteTarget());
