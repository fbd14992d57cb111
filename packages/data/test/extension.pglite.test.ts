import { pgliteTarget } from '@chassis/testing';
import { extensionSuite } from './extension/suite.ts';

extensionSuite(pgliteTarget());
