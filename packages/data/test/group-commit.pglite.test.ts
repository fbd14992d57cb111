import { memoryTarget, pgliteTarget } from '@chassis/testing';
import { groupCommitSuite } from './group-commit/suite.ts';

groupCommitSuite(memoryTarget(), pgliteTarget());
