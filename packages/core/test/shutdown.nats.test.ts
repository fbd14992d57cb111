import { natsTarget } from '@chassis/testing';
import { shutdownSuite } from './shutdown/suite.ts';

shutdownSuite(await natsTarget());
