/** A contract's field errors as one line of an error message. */
export function describeFields(fields: { path: string; message: string }[]): string {
  return fields.map((field) => `${field.path}: ${field.message}`).join('; ');
}
