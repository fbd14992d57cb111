import { pgliteTarget } from '@chassis/testing';
import { sagaSuite } from './sagas/suite.ts';

sagaSuite(pgliteTarget());
