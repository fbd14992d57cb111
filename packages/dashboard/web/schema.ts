/** A JSON Schema as zod 4's `z.toJSONSchema` writes it (the parts an example needs). */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  examples?: unknown[];
  format?: string;
  pattern?: string;
  minimum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  description?: string;
}

/** Values for the patterns SimpleBank-like contracts use most, so the pre-filled input is often valid as is. */
function fromPattern(pattern: string): string | undefined {
  if (pattern.includes('\\d{1,12}')) return '101';
  if (pattern.includes('[A-Z]{1,5}')) return 'BHP';
  if (pattern.includes('\\d{1,15}\\.\\d{2}')) return '100.00';
  return undefined;
}

/** An example value of a schema, for the explorer's editor: every property, the first of each choice. */
export function exampleOf(schema: JsonSchema | undefined, depth = 0): unknown {
  if (!schema || depth > 6) return null;
  if (schema.examples?.length) return schema.examples[0];
  if (schema.default !== undefined) return schema.default;
  if (schema.const !== undefined) return schema.const;
  if (schema.enum?.length) return schema.enum[0];
  const choice = schema.anyOf ?? schema.oneOf;
  if (choice?.length) return exampleOf(choice.find((s) => s.type !== 'null') ?? choice[0], depth + 1);
  if (schema.allOf?.length) return exampleOf(schema.allOf[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [name, property] of Object.entries(schema.properties ?? {})) {
        out[name] = exampleOf(property, depth + 1);
      }
      return out;
    }
    case 'array':
      return schema.minItems ? [exampleOf(schema.items, depth + 1)] : [];
    case 'integer':
    case 'number':
      return schema.minimum ?? (schema.exclusiveMinimum === undefined ? 1 : Math.floor(schema.exclusiveMinimum) + 1);
    case 'boolean':
      return false;
    case 'string':
      if (schema.format === 'uuid') return crypto.randomUUID();
      if (schema.format === 'date-time') return new Date().toISOString();
      if (schema.format === 'email') return 'someone@example.com';
      return (schema.pattern && fromPattern(schema.pattern)) ?? '';
    default:
      return null;
  }
}
