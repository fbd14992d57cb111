import { natsTarget, postgresTarget } from '@chassis/testing';
import { groupCommitSuite } from './group-commit/suite.ts';

groupCommitSuite(await natsTarget(), await postgresTarget());
