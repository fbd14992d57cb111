import { postgresTarget } from '@chassis/testing';
import { schedulesSuite } from './schedules/suite.ts';

schedulesSuite(await postgresTarget());
