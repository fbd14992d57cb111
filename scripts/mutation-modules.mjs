// The modules `npm run mutate` breaks on purpose: each is the source that carries a guarantee and the
// test files that should notice when it breaks. Tests are globs, so a new test file next to these is
// picked up; only files that run the mutated code count against a mutant (Stryker's per-file coverage).
//
// Left out on purpose: tests that restart the shared servers (nats-transport, amqp-transport, chaos),
// since a mutation run executes them hundreds of times, and tests whose code under test runs in child
// processes (distributed), whose coverage Stryker cannot see, and SimpleBank's embedded scenarios, which
// take minutes a run on a loaded machine: the fee and ledger tests kill the same mutants in seconds.

/** The tests that decide an event's fate and a request's deadline: `disposition` runs these, `node` more. */
const dispositionTests = [
  'packages/core/test/node/*.test.ts',
  'packages/core/test/node.test.ts',
  'packages/core/test/*disposition*.test.ts',
  'packages/core/test/*deadline*.test.ts',
  'packages/core/test/*skew*.test.ts',
  'packages/core/test/local-calls.test.ts',
  'packages/core/test/envelope.test.ts',
];

export const mutationModules = {
  fees: {
    description: "SimpleBank's fee: 0.1% of the notional, minimum 1.00",
    env: { SIMPLEBANK_TEST_DATABASE: 'postgres' },
    // feeFor (the rule) and the money helpers live with the contracts; the service records and announces.
    mutate: ['apps/simplebank/contracts/common.ts', 'apps/simplebank/services/fees/service.ts'],
    tests: ['apps/simplebank/test/*fee*.test.ts', 'apps/simplebank/test/sell-order.test.ts'],
  },
  ledger: {
    description: "SimpleBank's ledger: reservations, cash and shares never oversold",
    mutate: ['apps/simplebank/services/account-transactions/service.ts'],
    // The one-node bank on a new PostgreSQL database, not PGlite, whose start each test process would pay.
    env: { SIMPLEBANK_TEST_DATABASE: 'postgres' },
    tests: [
      'apps/simplebank/test/*ledger*.test.ts',
      // The oversell races on real PostgreSQL, and the fee's charge and refund, which the ledger decides.
      'apps/simplebank/test/*reservation*.test.ts',
      'apps/simplebank/test/*fee*.test.ts',
      'apps/simplebank/test/access.test.ts',
      'apps/simplebank/test/sell-order.test.ts',
      'apps/simplebank/test/payments-sweep.test.ts',
      'apps/simplebank/test/expiry.test.ts',
    ],
  },
  policies: {
    description: 'Call and handler policies: retry, retry budget, breaker, bulkhead, rate limit, timeout, cache',
    mutate: ['packages/core/src/policies/*.ts'],
    tests: [
      'packages/core/test/policies/*.test.ts',
      'packages/core/test/*polic*.test.ts',
      'packages/core/test/*breaker*.test.ts',
      'packages/core/test/*budget*.test.ts',
      'packages/core/test/resilience.memory.test.ts',
      // The cache's Redis store.
      'packages/core/test/cache.redis.test.ts',
    ],
  },
  outbox: {
    description: 'The transactional outbox and its relay',
    mutate: ['packages/data/src/outbox.ts', 'packages/data/src/outbox-relay.ts'],
    tests: ['packages/data/test/outbox.postgres.test.ts', 'packages/data/test/*outbox*.test.ts'],
  },
  inbox: {
    description: 'The inbox: a redelivered event never runs its handler twice',
    mutate: ['packages/data/src/inbox.ts'],
    // The outbox suite holds the inbox's own cases (claim, prune, a message without an id).
    tests: [
      'packages/data/test/extension.postgres.test.ts',
      'packages/data/test/*inbox*.test.ts',
      'packages/data/test/outbox.postgres.test.ts',
    ],
  },
  node: {
    description: "The node's event disposition (ack, retry, dead-letter) and deadlines",
    mutate: ['packages/core/src/node/*.ts', 'packages/core/src/envelope.ts'],
    tests: [
      ...dispositionTests,
      'packages/core/test/resilience.memory.test.ts',
      'packages/core/test/memory.conformance.test.ts',
    ],
  },
  // The part of `node` that decides an event's fate and a request's deadline, for a run in minutes rather
  // than an hour: the pure decisions, which the node's stages only carry out.
  disposition: {
    description: "The node's event disposition and deadlines only (a quick subset of `node`)",
    mutate: [
      'packages/core/src/node/disposition.ts',
      'packages/core/src/node/deadline.ts',
      'packages/core/src/envelope.ts',
    ],
    tests: dispositionTests,
  },
  'event-store': {
    description: 'The event store: optimistic concurrency, streams, snapshots, projections',
    mutate: ['packages/data/src/event-store.ts', 'packages/data/src/projections.ts'],
    tests: ['packages/data/test/event-store.postgres.test.ts', 'packages/data/test/*event-store*.test.ts'],
  },
  sagas: {
    description: 'Sagas: steps, compensation, resumption after a crash',
    mutate: [
      'packages/data/src/sagas/definition.ts',
      'packages/data/src/sagas/transitions.ts',
      'packages/data/src/sagas/store.ts',
      'packages/data/src/sagas/runner.ts',
    ],
    // Not the SIGKILL test (sagas-crash.*): its work is in child processes, which Stryker cannot see, and
    // it takes a minute a run.
    tests: ['packages/data/test/sagas/transitions.test.ts', 'packages/data/test/sagas.postgres.test.ts'],
  },
  extension: {
    description: "The data extension: unit of work per handler, the node-level inbox claim, the outbox's hand-off",
    mutate: ['packages/data/src/extension.ts', 'packages/data/src/unit-of-work.ts'],
    tests: ['packages/data/test/extension.postgres.test.ts', 'packages/data/test/*inbox*.test.ts'],
  },
};

/** Smallest first: the order `npm run mutate` runs them in when no module is named. */
export const moduleOrder = [
  'fees',
  'ledger',
  'policies',
  'outbox',
  'inbox',
  'disposition',
  'node',
  'event-store',
  'sagas',
  'extension',
];
