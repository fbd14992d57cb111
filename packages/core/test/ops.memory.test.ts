import { memoryTarget } from '@chassis/testing';
import { opsSuite } from './ops/suite.ts';

opsSuite(memoryTarget());
