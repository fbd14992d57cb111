import { postgresTarget } from '@chassis/testing';
import { foundationSuite } from './foundation/suite.ts';

foundationSuite(await postgresTarget());
