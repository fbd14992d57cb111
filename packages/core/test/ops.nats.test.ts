import { natsTarget } from '@chassis/testing';
import { opsSuite } from './ops/suite.ts';

opsSuite(await natsTarget());
