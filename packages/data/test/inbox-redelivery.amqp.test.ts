import { amqpTarget, postgresTarget } from '@chassis/testing';
import { inboxRedeliverySuite } from './inbox-redelivery/suite.ts';

inboxRedeliverySuite(await amqpTarget(), await postgresTarget());
