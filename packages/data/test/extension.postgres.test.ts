import { postgresTarget } from '@chassis/testing';
import { extensionSuite } from './extension/suite.ts';

extensionSuite(await postgresTarget());
