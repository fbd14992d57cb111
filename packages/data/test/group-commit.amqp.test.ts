import { amqpTarget, postgresTarget } from '@chassis/testing';
import { groupCommitSuite } from './group-commit/suite.ts';

groupCommitSuite(await amqpTarget(), await postgresTarget());
