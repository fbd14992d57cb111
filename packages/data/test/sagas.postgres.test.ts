import { postgresTarget } from '@chassis/testing';
import { sagaSuite } from './sagas/suite.ts';
import { sagaTakeoverSuite } from './sagas/takeover.ts';

const target = await postgresTarget();
sagaSuite(target);
sagaTakeoverSuite(target);
