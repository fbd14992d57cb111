import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { action, ChassisError, createLogger, defineService, handle, InMemorySpanExporter } from '@chassis/core';
import { memoryTarget, useCluster } from '@chassis/testing';
import { parse } from 'yaml';
import { z } from 'zod';

/**
 * The logs-and-traces configuration shipped in deploy/: the OpenTelemetry collector's (deploy/otel) and
 * Fluent Bit's (deploy/logging). Neither tool runs here (no package in npm or Debian), so the files are
 * parsed and checked for what would make the tools refuse them or lose data, against what the nodes
 * really emit.
 */

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFile(join(repo, path), 'utf8');

interface CollectorConfig {
  receivers: Record<string, { protocols?: Record<string, { endpoint?: string }> }>;
  processors?: Record<string, unknown>;
  exporters: Record<string, { endpoint?: string }>;
  extensions?: Record<string, unknown>;
  service: {
    extensions?: string[];
    pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }>;
  };
}

interface ComposeFile {
  services: Record<string, { command?: string[]; volumes?: string[]; environment?: Record<string, string> }>;
}

describe('deploy/otel/collector.yml', () => {
  it('every pipeline uses only defined receivers, processors and exporters, and every one defined is used', async () => {
    const config = parse(await read('deploy/otel/collector.yml')) as CollectorConfig;
    const used = { receivers: new Set<string>(), processors: new Set<string>(), exporters: new Set<string>() };
    assert.ok(Object.keys(config.service.pipelines).length > 0);
    for (const [name, pipeline] of Object.entries(config.service.pipelines)) {
      // A pipeline's id is its signal, optionally with a /name: traces, metrics, logs.
      assert.match(name, /^(traces|metrics|logs)(\/.+)?$/);
      assert.ok(pipeline.receivers.length > 0 && pipeline.exporters.length > 0, `${name} receives and exports`);
      for (const kind of ['receivers', 'processors', 'exporters'] as const) {
        for (const id of pipeline[kind] ?? []) {
          assert.ok(config[kind]?.[id] !== undefined, `${name} uses ${kind.slice(0, -1)} ${id}, which is defined`);
          used[kind].add(id);
        }
      }
      // memory_limiter only protects the collector when it comes first.
      if (pipeline.processors?.includes('memory_limiter')) assert.equal(pipeline.processors[0], 'memory_limiter');
    }
    for (const kind of ['receivers', 'processors', 'exporters'] as const) {
      assert.deepEqual([...used[kind]].sort(), Object.keys(config[kind] ?? {}).sort(), `every ${kind} is used`);
    }
    for (const id of config.service.extensions ?? []) assert.ok(config.extensions?.[id] !== undefined, id);
  });

  it('receives OTLP over gRPC and HTTP, exports traces to Jaeger over OTLP and to the debug log', async () => {
    const config = parse(await read('deploy/otel/collector.yml')) as CollectorConfig;
    assert.equal(config.receivers.otlp?.protocols?.grpc?.endpoint, '0.0.0.0:4317');
    assert.equal(config.receivers.otlp?.protocols?.http?.endpoint, '0.0.0.0:4318');
    const traces = config.service.pipelines.traces;
    assert.deepEqual(traces?.receivers, ['otlp']);
    const jaeger = traces?.exporters.find((id) => id === 'otlp' || id.startsWith('otlp/'));
    assert.equal(config.exporters[jaeger ?? '']?.endpoint, 'jaeger:4317');
    assert.ok(traces?.exporters.includes('debug'));
  });

  it('is what Compose runs, and the nodes there send spans to its OTLP/HTTP receiver', async () => {
    const compose = parse(await read('deploy/compose/docker-compose.yml'), { merge: true }) as ComposeFile;
    const collector = compose.services['otel-collector'];
    const mount = collector?.volumes?.find((volume) => volume.startsWith('../otel/collector.yml:'));
    const inside = mount?.split(':')[1];
    assert.ok(inside && collector?.command?.includes(`--config=${inside}`), 'the mounted file is the config');
    assert.ok(compose.services.jaeger, 'the exporter reaches the jaeger service');
    // The chassis exports with the OTLP/HTTP exporter (tracing.ts), so the endpoint is the HTTP port.
    const tracing = await read('packages/core/src/observability/tracing.ts');
    assert.match(tracing, /@opentelemetry\/exporter-trace-otlp-http/);
    assert.equal(compose.services.edge?.environment?.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector:4318');
  });
});

/** A literal in a regex (RegExp.escape is Node 24's, not yet in TypeScript 5.9's types). */
const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** A Fluent Bit classic-mode file: sections of `Key Value` lines (keys are case-insensitive). */
type Section = { kind: string; entries: Map<string, string> };

function parseFluentBit(text: string): Section[] {
  const sections: Section[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[([A-Z_]+)\]$/.exec(line);
    if (header) {
      sections.push({ kind: header[1]!, entries: new Map() });
      continue;
    }
    assert.ok(/^\s+\S/.test(raw), `an entry is indented under its section: ${raw}`);
    const entry = /^(\S+)\s+(.+)$/.exec(line);
    assert.ok(entry, `an entry is "Key Value": ${raw}`);
    const section = sections.at(-1);
    assert.ok(section, `an entry belongs to a section: ${raw}`);
    const key = entry[1]!.toLowerCase();
    assert.ok(!section.entries.has(key) || key === 'labels', `${key} is set once in [${section.kind}]`);
    section.entries.set(key, entry[2]!.trim());
  }
  return sections;
}

/** Fluent Bit's tag matching: `*` stands for any characters. */
function tagMatches(pattern: string, tag: string): boolean {
  const regex = new RegExp(`^${pattern.split('*').map(escapeRegex).join('.*')}$`);
  return regex.test(tag);
}

/** A strptime format as a regex for the times it reads (only the directives Fluent Bit's docs use). */
function strptimeRegex(format: string): RegExp {
  const directives: Record<string, string> = {
    Y: '\\d{4}',
    m: '\\d{2}',
    d: '\\d{2}',
    H: '\\d{2}',
    M: '\\d{2}',
    S: '\\d{2}',
    L: '\\d+',
    z: '(?:Z|[+-]\\d{2}:?\\d{2})',
  };
  let pattern = '';
  for (let i = 0; i < format.length; i++) {
    if (format[i] === '%') {
      const directive = directives[format[++i] ?? ''];
      assert.ok(directive, `Time_Format directive %${format[i]} is known`);
      pattern += directive;
    } else pattern += escapeRegex(format[i]!);
  }
  return new RegExp(`^${pattern}$`);
}

/** The first log line `node apps/simplebank/src/main.ts` writes, as a shipper would read it. */
async function firstLogLineOfSimplebank(): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, [join(repo, 'apps/simplebank/src/main.ts')], {
    env: {
      ...process.env,
      SERVICES: 'identity',
      OPS_PORT: 'off',
      PORT: 'off',
      LOG_LEVEL: 'info',
      DATABASE_URL: 'pglite://memory',
      CHASSIS_VERSION: '1.4.0',
      CHASSIS_COMMIT: '3e1a9c2',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    // The banner main.ts prints for people is not a log line; the logger's lines are JSON objects.
    for await (const line of createInterface({ input: child.stdout })) {
      if (line.startsWith('{')) return JSON.parse(line) as Record<string, unknown>;
    }
    throw new Error('SimpleBank wrote no log line');
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

describe('deploy/logging', () => {
  const cluster = useCluster(memoryTarget());

  /** Lines a handler writes inside a traced request: the fields only the async context adds. */
  async function handlerLogLines(): Promise<Record<string, unknown>[]> {
    const lines: string[] = [];
    const reserve = action(`ledger-${cluster.suffix}.reserve`, {
      input: z.object({ quantity: z.number() }),
      output: z.object({ ok: z.boolean() }),
    });
    const ledger = defineService({
      name: reserve.service,
      actions: [
        handle(reserve, (_input, ctx) => {
          ctx.log.info('reserving shares');
          ctx.log.error({ err: new ChassisError('UNAVAILABLE', 'the exchange is away') }, 'could not reserve');
          return { ok: true };
        }),
      ],
    });
    const logger = createLogger({
      nodeId: 'ledger',
      version: '1.4.0',
      commit: '3e1a9c2',
      level: 'info',
      destination: { write: (line: string) => lines.push(line) },
    });
    const node = await cluster.startNode([ledger], {
      tracing: { exporter: new InMemorySpanExporter(), sampleRatio: 1 },
      logger,
    });
    await node.call(reserve, { quantity: 5 }, { correlationId: 'req-42' });
    return lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.service === reserve.service);
  }

  it("README.md documents every field of a starting node's line and of a handler's lines", async () => {
    const readme = await read('deploy/logging/README.md');
    const fieldsTable = readme.slice(readme.indexOf('## Fields'), readme.indexOf('## What to index'));
    const documented = new Set([...fieldsTable.matchAll(/^\| `([A-Za-z]+)`\s*\|/gm)].map((match) => match[1]));
    const starting = await firstLogLineOfSimplebank();
    const inHandler = await handlerLogLines();
    assert.equal(inHandler.length, 2);
    const perMessage = new Set(['status']); // fields of one message, listed under "anything else"
    for (const entry of [starting, ...inHandler]) {
      for (const key of Object.keys(entry)) {
        assert.ok(
          documented.has(key) || (perMessage.has(key) && fieldsTable.includes(`\`${key}\``)),
          `field ${key} is documented`,
        );
      }
    }
    for (const key of ['service', 'correlationId', 'traceId', 'spanId']) assert.ok(key in inHandler[0]!, key);
    assert.match(String(inHandler[0]!.traceId), /^[0-9a-f]{32}$/);
    assert.match(String(inHandler[0]!.spanId), /^[0-9a-f]{16}$/);
    assert.equal((inHandler[1]!.err as { code?: string }).code, 'UNAVAILABLE');
    assert.match(fieldsTable, /`err`\s*\| object: `type`, `message`, `stack`/);
    assert.equal(starting.version, '1.4.0');
  });

  it('fluent-bit.conf: every filter and output matches an input, every parser it names is defined, the time format reads a real line', async () => {
    const sections = parseFluentBit(await read('deploy/logging/fluent-bit.conf'));
    const service = sections.find((section) => section.kind === 'SERVICE');
    const parsersFile = service?.entries.get('parsers_file') ?? '';
    assert.ok(existsSync(join(repo, 'deploy/logging', parsersFile)), `Parsers_File ${parsersFile} exists`);
    const parsers = parseFluentBit(await read(join('deploy/logging', parsersFile)));
    const parserNames = new Set(parsers.map((parser) => parser.entries.get('name')));
    assert.ok(parsers.every((parser) => parser.kind === 'PARSER'));

    const inputs = sections.filter((section) => section.kind === 'INPUT');
    assert.ok(inputs.length > 0);
    // A tail input's `kube.*` tag becomes kube.<the file's path>; a sample tag stands for it.
    const tags = inputs.map((input) => (input.entries.get('tag') ?? '').replace('*', 'var.log.containers.pod.log'));
    for (const section of sections.filter((s) => s.kind === 'FILTER' || s.kind === 'OUTPUT')) {
      const name = section.entries.get('name');
      const match = section.entries.get('match') ?? '';
      assert.ok(name, `every [${section.kind}] has a Name`);
      assert.ok(
        tags.some((tag) => tagMatches(match, tag)),
        `[${section.kind}] ${name} Match ${match} matches an input`,
      );
      for (const key of ['parser', 'merge_parser']) {
        const parser = section.entries.get(key);
        if (parser) assert.ok(parserNames.has(parser), `${name} uses parser ${parser}, which parsers.conf defines`);
      }
    }
    for (const input of inputs) {
      for (const parser of (input.entries.get('multiline.parser') ?? '')
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)) {
        assert.ok(['cri', 'docker'].includes(parser), `${parser} is one of Fluent Bit's built-in multiline parsers`);
      }
    }

    const line = await firstLogLineOfSimplebank();
    const chassisJson = parsers.find((parser) => parser.entries.get('name') === 'chassis_json');
    assert.equal(chassisJson?.entries.get('format'), 'json');
    assert.ok(
      chassisJson?.entries.get('time_key') && chassisJson.entries.get('time_key')! in line,
      'Time_Key is a field of the line',
    );
    assert.match(
      String(line[chassisJson!.entries.get('time_key')!]),
      strptimeRegex(chassisJson!.entries.get('time_format') ?? ''),
    );

    // Loki's labels are fields of every handler line: a missing one would silently drop the label.
    const loki = sections.find((section) => section.kind === 'OUTPUT' && section.entries.get('name') === 'loki');
    const labels = [...(loki?.entries.get('labels') ?? '').matchAll(/\$([A-Za-z]+)/g)].map((m) => m[1]!);
    assert.deepEqual(labels.sort(), ['level', 'node', 'service']);
    for (const label of ['correlationId', 'traceId', 'spanId'])
      assert.ok(!labels.includes(label), `${label} is not a label`);
  });
});
