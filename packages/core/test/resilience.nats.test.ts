import { natsTarget } from '@chassis/testing';
import { resilienceSuite } from './resilience/suite.ts';

resilienceSuite(await natsTarget());
