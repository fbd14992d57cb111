import { postgresTarget } from '@chassis/testing';
import { sagasInNodeSuite } from './sagas/in-node.ts';

sagasInNodeSuite(await postgresTarget());
