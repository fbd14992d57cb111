import { postgresTarget } from '@chassis/testing';
import { sagaCrashSuite } from './sagas/suite.ts';

sagaCrashSuite(await postgresTarget());
