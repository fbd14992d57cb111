import { memoryTarget, postgresTarget } from '@chassis/testing';
import { groupCommitSuite } from './group-commit/suite.ts';

groupCommitSuite(memoryTarget(), await postgresTarget());
