import { memoryTarget } from '@chassis/testing';
import { observabilitySuite } from './observability/suite.ts';

observabilitySuite(memoryTarget());
