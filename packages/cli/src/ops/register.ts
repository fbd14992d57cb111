import { type Command, InvalidArgumentError, Option } from 'commander';
import type { Output } from '../output.ts';

/**
 * The commands that talk to a running system (its ops API, docs/ops.md), added to the `chassis`
 * program. Their modules are imported when they run, as the other commands' are.
 */

function positive(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < 1) throw new InvalidArgumentError('it must be a whole number, 1 or more');
  return number;
}

function port(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number > 65_535) throw new InvalidArgumentError('it must be a port number, 0 to 65535');
  return number;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;
}

const CONNECTION_HELP = `
Connection: through the broker of CHASSIS_TRANSPORT (nats://, amqp://), joined as a node that serves
nothing; or, when it is unset or "memory" (the embedded default), the ops port at --ops, default
http://127.0.0.1:9400. The ops API wants the ops secret (--secret, CHASSIS_OPS_SECRET) or a token with the
admin role (--token, CHASSIS_TOKEN).`;

/** The connection options every ops command takes. */
function connected(command: Command): Command {
  return command
    .option('--ops <url>', "an embedded system's ops port (default http://127.0.0.1:9400 without a broker)")
    .option('--transport <url>', 'the broker (default CHASSIS_TRANSPORT): nats://… or amqp://…')
    .option('--secret <secret>', 'the ops secret (default CHASSIS_OPS_SECRET)')
    .option(
      '--token <token>',
      'a token: with the admin role for the ops API; the caller’s own for call (default CHASSIS_TOKEN)',
    )
    .addHelpText('after', CONNECTION_HELP);
}

function listing(command: Command): Command {
  return connected(command)
    .option('--json', 'JSON for scripts instead of a table', false)
    .option('--service <name>', 'only this service');
}

export function registerOpsCommands(
  program: Command,
  output: Output,
  setExitCode: (code: number) => void,
  run: (args: string[]) => Promise<number>,
): void {
  const load = () => import('./commands.ts');

  listing(program.command('nodes').description('the nodes of the running system: host, pid, services, last heartbeat'))
    .addHelpText('after', examples('chassis nodes', 'CHASSIS_TRANSPORT=nats://127.0.0.1:4222 chassis nodes --json'))
    .action(async (flags) => (await load()).nodes(flags, output));
  listing(program.command('services').description('the services running, their versions and nodes'))
    .addHelpText('after', examples('chassis services', 'chassis services --service accounts --json'))
    .action(async (flags) => (await load()).services(flags, output));
  listing(program.command('actions').description('the actions served (--json: inputs and outputs as JSON Schema)'))
    .addHelpText('after', examples('chassis actions --service accounts', 'chassis actions --json | jq ".[0].input"'))
    .action(async (flags) => (await load()).actions(flags, output));
  listing(program.command('events').description('the events handled (with their subscriptions) and emitted'))
    .addHelpText('after', examples('chassis events', 'chassis events --json'))
    .action(async (flags) => (await load()).events(flags, output));

  connected(
    program
      .command('call')
      .description('call an action; prints its output as JSON, exits non-zero with the error’s code and fields')
      .argument('<action>', '<service>.<action>, e.g. accounts.open')
      .argument('[input]', 'its input: JSON (\'{"name":"Ada"}\'), @file.json, or @- for stdin; default {}'),
  )
    .option('--timeout <ms>', 'how long to wait for the answer', positive)
    .option('--node <id>', 'call it from this node (through its ops API), served there if it runs the action')
    .addHelpText(
      'after',
      examples(
        `chassis call accounts.open '{"owner":"ada"}' --token "$TOKEN"`,
        'chassis call orders.place @order.json --timeout 5000',
      ),
    )
    .action(async (name: string, input: string | undefined, flags) => (await load()).call(name, input, flags, output));

  connected(
    program
      .command('emit')
      .description('publish an event, its payload checked against the contract of a service that handles or emits it')
      .argument('<event>', '<source>.<event>, e.g. accounts.opened')
      .argument('[payload]', 'its payload: JSON, @file.json or @-; default {}'),
  )
    .addHelpText('after', examples(`chassis emit market.priceChanged '{"symbol":"ACME","price":12.5}'`))
    .action(async (name: string, payload: string | undefined, flags) =>
      (await load()).emit(name, payload, flags, output),
    );

  const dlq = program
    .command('dlq')
    .description('dead letters: list the queues, show, replay or purge their letters')
    .addHelpText('after', examples('chassis dlq list', 'chassis dlq replay market.order_created'));
  listing(dlq.command('list').description('the dead-letter queues and how many letters each holds'))
    .addHelpText('after', examples('chassis dlq list', 'chassis dlq list --service market --json'))
    .action(async (flags) => (await load()).dlqList(flags, output));
  connected(
    dlq
      .command('show')
      .description('the letters of a queue, oldest first')
      .argument('<queue>', 'e.g. market.order_created'),
  )
    .option('--id <id>', 'one letter, whole, as JSON')
    .option('--limit <n>', 'how many (default 20)', positive)
    .option('--json', 'JSON instead of a table', false)
    .addHelpText(
      'after',
      examples('chassis dlq show market.order_created', 'chassis dlq show market.order_created --id 3f0c…'),
    )
    .action(async (queue: string, flags) => (await load()).dlqShow(queue, flags, output));
  connected(
    dlq
      .command('replay')
      .description('run the handler of dead letters once more; handled ones are deleted, the others stay, with why')
      .argument('<queue>', 'a subscription, e.g. market.order_created'),
  )
    .option('--id <id>', 'only this letter (repeatable)', collect)
    .option('--limit <n>', 'at most this many', positive)
    .option('--node <id>', 'on this node (default: one that runs the subscription)')
    .option('--json', 'the outcome as JSON', false)
    .addHelpText(
      'after',
      examples(
        'chassis dlq replay market.order_created',
        'chassis dlq replay market.order_created --id 3f0c… --id 9a1b…',
      ),
    )
    .action(async (queue: string, flags) => setExitCode(await (await load()).dlqReplay(queue, flags, output)));
  connected(
    dlq
      .command('purge')
      .description('delete dead letters: some (--id) or all (--all)')
      .argument('<queue>', 'the queue'),
  )
    .option('--id <id>', 'a letter to delete (repeatable)', collect)
    .option('--all', 'every letter of the queue', false)
    .option('--json', 'the outcome as JSON', false)
    .addHelpText(
      'after',
      examples('chassis dlq purge rpc.orders --all', 'chassis dlq purge market.order_created --id 3f0c…'),
    )
    .action(async (queue: string, flags) => (await load()).dlqPurge(queue, flags, output));

  const sagas = program
    .command('sagas')
    .description('sagas (the data kit): list, show, retry a failed one, abort a running one')
    .addHelpText('after', examples('chassis sagas list --status failed', 'chassis sagas retry 0193…'));
  listing(sagas.command('list').description('saga instances, newest first, with counts per status'))
    .option('--saga <name>', 'only this saga')
    .addOption(
      new Option('--status <status>', 'only this status').choices([
        'running',
        'compensating',
        'completed',
        'compensated',
        'failed',
      ]),
    )
    .option('--limit <n>', 'how many instances (default 50)', positive)
    .addHelpText('after', examples('chassis sagas list', 'chassis sagas list --status failed --json'))
    .action(async (flags) => (await load()).sagasList(flags, output));
  for (const [name, description] of [
    ['show', 'one instance with its whole history, as JSON'],
    ['retry', 'a failed saga: back to compensating, its failed compensation tried again'],
    ['abort', 'a running saga: to compensating, its current step compensated first'],
  ] as const) {
    const command = connected(sagas.command(name).description(description).argument('<id>', 'the instance id'))
      .option('--service <name>', 'the service whose saga it is')
      .addHelpText('after', examples(`chassis sagas ${name} 0193…`));
    if (name === 'abort') command.option('--reason <text>', 'why, kept in its history');
    command.action(async (id: string, flags) => (await load()).sagaAction(`sagas.${name}`, id, flags, output));
  }

  listing(program.command('outbox').description('the outbox of each service (the data kit): pending, oldest, parked'))
    .addHelpText('after', examples('chassis outbox', 'chassis outbox --json'))
    .action(async (flags) => (await load()).outbox(flags, output));
  listing(program.command('health').description("every node's liveness and readiness; exits 1 when one is not ready"))
    .addHelpText('after', examples('chassis health', 'until chassis health >/dev/null; do sleep 1; done'))
    .action(async (flags) => setExitCode(await (await load()).health(flags, output)));

  connected(
    program
      .command('bench')
      .description('call an action as fast as it goes: throughput and latency percentiles')
      .argument('<action>', '<service>.<action>')
      .argument('[input]', 'its input: JSON, @file.json or @-; default {}'),
  )
    .option('--concurrency <n>', 'calls in flight at once', positive, 10)
    .option('--seconds <s>', 'how long', positive, 5)
    .option('--timeout <ms>', 'per call', positive)
    .option('--json', 'the result as JSON', false)
    .addHelpText('after', examples(`chassis bench accounts.get '{"id":"a1"}' --concurrency 32 --seconds 10`))
    .action(async (name: string, input: string | undefined, flags) => {
      const { bench } = await import('./bench.ts');
      setExitCode(await bench(name, input, flags, output));
    });

  connected(
    program
      .command('dashboard')
      .description(
        'a browser dashboard of the running system: catalog, API explorer, topology, traces, sagas, queues, health',
      ),
  )
    .option('--port <port>', 'where it listens on 127.0.0.1 (0 picks a free one)', port, 9500)
    .addHelpText(
      'after',
      examples(
        'CHASSIS_OPS_SECRET=… chassis dashboard',
        'chassis dashboard --transport nats://127.0.0.1:4222 --secret "$CHASSIS_OPS_SECRET" --port 9600',
      ),
    )
    .action(async (flags) => {
      const { dashboard } = await import('../commands/dashboard.ts');
      setExitCode(await dashboard(flags, output));
    });

  connected(
    program
      .command('repl')
      .description(
        'the same commands interactively: Tab completes commands, actions and events; history in ~/.chassis_history',
      ),
  )
    .addHelpText('after', examples('chassis repl', 'CHASSIS_TRANSPORT=nats://127.0.0.1:4222 chassis repl'))
    .action(async (flags) => {
      const { repl } = await import('./repl.ts');
      setExitCode(await repl(flags, output, run));
    });
}
