import { pgliteTarget } from '@chassis/testing';
import { eventStoreSuite } from './event-store/suite.ts';

eventStoreSuite(pgliteTarget());
