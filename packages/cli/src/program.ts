import { readFileSync } from 'node:fs';
import { styleText } from 'node:util';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { registerOpsCommands } from './ops/register.ts';
import { CliError, type Output, oneLine, processOutput } from './output.ts';

/**
 * The `chassis` command, on commander: subcommands each with their own `--help` (with an example),
 * suggestions for a mistyped command, and parsing of options into numbers before an action runs.
 * commander rather than `util.parseArgs` because the latter has no subcommands and no help; commander is
 * the parser most Node CLIs use, kept up and without dependencies of its own.
 *
 * Each command's module is imported when it runs: `openapi` loads Fastify's plugins and `deploy render` the
 * Kubernetes schemas, which `--help` and a mistyped command should not wait for.
 */

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

function port(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number > 65_535) throw new InvalidArgumentError('it must be a port number, 0 to 65535');
  return number;
}

function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;
}

export interface RunOptions {
  output?: Output;
  cwd?: string;
}

export function createProgram(options: RunOptions = {}): { program: Command; exitCode: () => number } {
  const output = options.output ?? processOutput;
  const cwd = options.cwd ?? process.cwd();
  let exitCode = 0;
  // Help titles and names in colour on a terminal; commander strips the styles elsewhere (and on NO_COLOR).
  const bright = (format: Parameters<typeof styleText>[0]) => (text: string) =>
    styleText(format, text, { validateStream: false });
  const program = new Command('chassis')
    .description('Build and run Chassis apps: scaffold them, run them in development, their API and manifests.')
    // The Node too: the launcher may have swapped the machine's for the project's.
    .version(
      `${version} (Node ${process.version})`,
      '-V, --version',
      'the versions of the chassis command and its Node',
    )
    .helpOption('-h, --help', 'what a command does, its options and an example')
    .helpCommand('help [command]', 'what a command does')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureHelp({
      styleTitle: bright('bold'),
      styleSubcommandText: bright('cyan'),
      styleCommandText: bright('cyan'),
    })
    .configureOutput({
      writeOut: (text) => output.out(text),
      writeErr: (text) => output.say(text),
      // commander's own errors (an unknown command or option, a missing argument) as one line.
      outputError: (text, write) =>
        write(
          `chassis: ${text
            .replace(/^error: /, '')
            .split('\n')
            .filter(Boolean)
            .join(' ')} (--help shows the usage)\n`,
        ),
    })
    .addHelpText(
      'after',
      examples(
        'chassis new app notebook --service notes',
        'chassis dev apps/notebook',
        'chassis openapi apps/simplebank --out openapi.json',
        'chassis deploy render apps/simplebank | kubectl apply -f -',
      ),
    );

  const create = program
    .command('new')
    .description('scaffold an app or a service')
    .addHelpText('after', examples('chassis new app notebook', 'chassis new service book-loans'));
  create
    .command('app')
    .description(
      'a new app: a contract (zod), a service with handlers, a migration, tests and a start script that pass npm test as generated',
    )
    .argument('<name>', 'lower-case letters, digits and "-" (its folder, package and Kubernetes name)')
    .option('--service <name>', 'its first service', 'items')
    .option('--dir <folder>', 'where to create it (default: apps/<name> in this workspace, else ./<name>)')
    .option(
      '--chassis <path>',
      'the Chassis checkout to depend on (file: dependencies) when the app is not a workspace of it; default: the one this command runs from',
    )
    .addHelpText(
      'after',
      examples('chassis new app notebook --service notes', 'chassis new app notebook --dir ../notebook --chassis .'),
    )
    .action(async (name: string, flags: { service: string; dir?: string; chassis?: string }) => {
      const { newApp } = await import('./commands/new.ts');
      newApp(name, { ...flags, cwd }, output);
    });
  create
    .command('service')
    .description('a new service in an app made by chassis new app: contract, handlers, migration, test, routes')
    .argument('<name>', 'lower-case letters, digits and "-" (its schema, folder and contracts’ prefix)')
    .option('--app <app>', "the app's folder or name (default: the app around the current folder)")
    .addHelpText(
      'after',
      examples('cd apps/notebook && chassis new service book-loans', 'chassis new service tags --app notebook'),
    )
    .action(async (name: string, flags: { app?: string }) => {
      const { newService } = await import('./commands/new.ts');
      newService(name, { ...flags, cwd }, output);
    });

  program
    .command('dev')
    .description('run an app all-in-one (memory transport, PGlite), restarted when a file changes; prints its URLs')
    .argument('[app]', "the app's folder or name (default: the app around the current folder, or the only one)")
    .option('--port <port>', "the gateway's port (PORT)", port, 8080)
    .option('--ops-port <port>', 'the ops port: /health/*, /metrics (OPS_PORT)', port, 9400)
    .option('--fresh', "an empty in-memory database at every start instead of the app's .data folder", false)
    .option('--no-watch', 'do not restart on changes')
    .option('--dashboard-port <port>', "the dashboard's port (chassis dashboard)", port, 9500)
    .option('--no-dashboard', 'do not start the dashboard')
    .addHelpText('after', examples('chassis dev', 'chassis dev apps/simplebank --port 3000 --fresh'))
    .action(
      async (
        app: string | undefined,
        flags: {
          port: number;
          opsPort: number;
          fresh: boolean;
          watch: boolean;
          dashboard: boolean;
          dashboardPort: number;
        },
      ) => {
        const { dev } = await import('./commands/dev.ts');
        const { dashboardPort, ...rest } = flags;
        exitCode = await dev(app, { ...rest, dashboard: flags.dashboard ? dashboardPort : false, cwd }, output);
      },
    );

  program
    .command('openapi')
    .description("write the app's OpenAPI 3.1 document (what its gateway serves at /openapi.json)")
    .argument('[app]', "the app's folder or name")
    .option('--out <file>', 'write it to a file instead of stdout')
    .addHelpText('after', examples('chassis openapi apps/simplebank > openapi.json', 'chassis openapi --out api.json'))
    .action(async (app: string | undefined, flags: { out?: string }) => {
      const { openapi } = await import('./commands/openapi.ts');
      await openapi(app, { ...flags, cwd }, output);
    });

  const deploy = program
    .command('deploy')
    .description("an app's deployment")
    .addHelpText('after', examples('chassis deploy render apps/simplebank'));
  deploy
    .command('render')
    .description("the app's Kubernetes manifests, from its topology (@chassis/deploy), checked against the schemas")
    .argument('[app]', "the app's folder or name")
    .option('--image <image>', 'the image every process runs (default: the topology’s)')
    .option('--out <dir>', 'write the Kustomize base (a file per component) instead of one YAML stream on stdout')
    .addHelpText(
      'after',
      examples(
        'chassis deploy render apps/simplebank | kubectl apply --dry-run=client -f -',
        'chassis deploy render --image ghcr.io/me/notebook:1.0.0 --out deploy/kubernetes/notebook/base',
      ),
    )
    .action(async (app: string | undefined, flags: { image?: string; out?: string }) => {
      const { deployRender } = await import('./commands/deploy.ts');
      await deployRender(app, { ...flags, cwd }, output);
    });

  // The commands that talk to a running system (ops/register.ts); the repl runs each line through run().
  registerOpsCommands(
    program,
    output,
    (code) => {
      exitCode = code;
    },
    (args) => run(args, options),
  );

  return { program, exitCode: () => exitCode };
}

/**
 * Runs the command line `args` (without `node chassis`); resolves to the exit code: 0 done, 1 failed,
 * 2 bad input (an unknown command, a bad name or option). Never throws, never prints a stack trace
 * unless CHASSIS_DEBUG=1.
 */
export async function run(args: readonly string[], options: RunOptions = {}): Promise<number> {
  const output = options.output ?? processOutput;
  const { program, exitCode } = createProgram(options);
  try {
    await program.parseAsync([...args], { from: 'user' });
    return exitCode();
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and the version exit 0 (1 for the help shown when no command is given); the rest was bad input.
      if (['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(error.code)) {
        return error.exitCode;
      }
      return 2;
    }
    output.say(`chassis: ${oneLine(error)}`);
    if (process.env.CHASSIS_DEBUG === '1' && error instanceof Error && error.stack) output.say(error.stack);
    return error instanceof CliError ? error.exitCode : 1;
  }
}
