import { postgresTarget } from '@chassis/testing';
import { outboxSuite } from './outbox/suite.ts';

outboxSuite(await postgresTarget());
