import { pgliteTarget } from '@chassis/testing';
import { outboxSuite } from './outbox/suite.ts';

outboxSuite(pgliteTarget());
