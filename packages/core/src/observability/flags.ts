import { existsSync, type FSWatcher, readFileSync, watch } from 'node:fs';
import {
  ErrorCode,
  type EvaluationContext,
  type JsonValue,
  OpenFeatureEventEmitter,
  type Provider,
  ProviderEvents,
  type ResolutionDetails,
  StandardResolutionReasons,
} from '@openfeature/server-sdk';

/**
 * The default feature-flag provider for OpenFeature: flags from environment variables
 * (`CHASSIS_FLAG_NEW_PRICING=true` is the flag `new-pricing`) and from a JSON file named by
 * `CHASSIS_FLAGS_FILE` (`{ "new-pricing": true, "fee-rate": 0.001 }`), the file winning, re-read when it
 * changes. Anything fancier (targeting, rollouts) is a different OpenFeature provider passed to the node.
 *
 * Written by hand: OpenFeature's own in-memory provider is meant for tests and has no environment or
 * file source.
 */
export class EnvironmentFlagProvider implements Provider {
  readonly metadata = { name: 'chassis-environment' } as const;
  readonly runsOn = 'server' as const;
  readonly events = new OpenFeatureEventEmitter();
  private flags: Record<string, JsonValue>;
  private watcher: FSWatcher | undefined;

  private readonly env: Record<string, string | undefined>;
  private readonly file: string | undefined;

  constructor(
    env: Record<string, string | undefined> = process.env,
    file: string | undefined = env.CHASSIS_FLAGS_FILE,
  ) {
    this.env = env;
    this.file = file;
    this.flags = this.load();
  }

  async initialize(): Promise<void> {
    if (this.file && existsSync(this.file)) {
      this.watcher = watch(this.file, () => {
        try {
          this.flags = this.load();
          this.events.emit(ProviderEvents.ConfigurationChanged, {});
        } catch {
          // A half-written file: keep the last good flags until the next change.
        }
      });
      this.watcher.unref();
    }
  }

  async onClose(): Promise<void> {
    this.watcher?.close();
  }

  private load(): Record<string, JsonValue> {
    const flags: Record<string, JsonValue> = {};
    for (const [name, raw] of Object.entries(this.env)) {
      if (!name.startsWith('CHASSIS_FLAG_') || raw === undefined) continue;
      flags[name.slice('CHASSIS_FLAG_'.length).toLowerCase().replaceAll('_', '-')] = parseValue(raw);
    }
    if (this.file && existsSync(this.file)) {
      const fromFile = JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, JsonValue>;
      Object.assign(flags, fromFile);
    }
    return flags;
  }

  private resolve<T extends JsonValue>(key: string, defaultValue: T, type: string): ResolutionDetails<T> {
    if (!(key in this.flags)) {
      return { value: defaultValue, reason: StandardResolutionReasons.DEFAULT };
    }
    const value = this.flags[key];
    const actual = Array.isArray(value) ? 'object' : value === null ? 'object' : typeof value;
    if (actual !== type) {
      return {
        value: defaultValue,
        reason: StandardResolutionReasons.ERROR,
        errorCode: ErrorCode.TYPE_MISMATCH,
        errorMessage: `flag "${key}" is a ${actual}, asked for a ${type}`,
      };
    }
    return { value: value as T, reason: StandardResolutionReasons.STATIC, variant: String(value) };
  }

  async resolveBooleanEvaluation(key: string, defaultValue: boolean, _context?: EvaluationContext) {
    return this.resolve(key, defaultValue, 'boolean');
  }
  async resolveStringEvaluation(key: string, defaultValue: string, _context?: EvaluationContext) {
    return this.resolve(key, defaultValue, 'string');
  }
  async resolveNumberEvaluation(key: string, defaultValue: number, _context?: EvaluationContext) {
    return this.resolve(key, defaultValue, 'number');
  }
  async resolveObjectEvaluation<T extends JsonValue>(key: string, defaultValue: T, _context?: EvaluationContext) {
    return this.resolve(key, defaultValue, 'object');
  }
}

function parseValue(raw: string): JsonValue {
  const trimmed = raw.trim();
  if (trimmed === 'true' || trimmed === 'false') return trimmed === 'true';
  if (trimmed !== '' && !Number.isNaN(Number(trimmed))) return Number(trimmed);
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return JSON.parse(trimmed) as JsonValue;
    } catch {
      return raw;
    }
  }
  return raw;
}
