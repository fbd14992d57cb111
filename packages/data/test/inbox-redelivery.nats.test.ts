import { natsTarget, postgresTarget } from '@chassis/testing';
import { inboxRedeliverySuite } from './inbox-redelivery/suite.ts';

inboxRedeliverySuite(await natsTarget(), await postgresTarget());
