import { pgliteTarget } from '@chassis/testing';
import { foundationSuite } from './foundation/suite.ts';

foundationSuite(pgliteTarget());
