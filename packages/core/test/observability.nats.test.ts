import { natsTarget } from '@chassis/testing';
import { observabilitySuite } from './observability/suite.ts';

observabilitySuite(await natsTarget());
