import { pgliteTarget } from '@chassis/testing';
import { sagasInNodeSuite } from './sagas/in-node.ts';

sagasInNodeSuite(pgliteTarget());
