import { postgresTarget } from '@chassis/testing';
import { eventStoreSuite } from './event-store/suite.ts';

eventStoreSuite(await postgresTarget());
