import { pgliteTarget } from '@chassis/testing';
import { sagaSuite } from './sagas/suite.ts';
import { sagaTakeoverSuite } from './sagas/takeover.ts';

const target = pgliteTarget();
sagaSuite(target);
sagaTakeoverSuite(target);
