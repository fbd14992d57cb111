import { pgliteTarget } from '@chassis/testing';
import { schedulesSuite } from './schedules/suite.ts';

schedulesSuite(pgliteTarget());
