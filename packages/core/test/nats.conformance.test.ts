import { natsTarget } from '@chassis/testing';
import { transportConformance } from './conformance/suite.ts';

transportConformance(await natsTarget());
