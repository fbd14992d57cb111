import { pgliteTarget } from '@chassis/testing';
import { sagaCrashSuite } from './sagas/suite.ts';

sagaCrashSuite(pgliteTarget());
