import { amqpTarget } from '@chassis/testing';
import { transportConformance } from './conformance/suite.ts';

transportConformance(await amqpTarget());
