import { postgresTarget } from '@chassis/testing';
import { sagaSuite } from './sagas/suite.ts';

sagaSuite(await postgresTarget());
