import { amqpTarget } from '@chassis/testing';
import { crashRedeliverySuite } from './crash-redelivery/suite.ts';

crashRedeliverySuite(await amqpTarget());
