import { memoryTarget } from '@chassis/testing';
import { transportConformance } from './conformance/suite.ts';

transportConformance(memoryTarget());
