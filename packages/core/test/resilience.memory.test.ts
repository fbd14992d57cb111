import { memoryTarget } from '@chassis/testing';
import { resilienceSuite } from './resilience/suite.ts';

resilienceSuite(memoryTarget());
