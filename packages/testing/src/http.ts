/**
 * A JSON request to an app's gateway, as the reference apps' tests (and SimpleBank's walk-through) make
 * them: the body, when there is one, as JSON; the token, when there is one, as a bearer. The answer's body
 * is read as JSON — a gateway of ours always answers with some, and a test should fail where it does not.
 */
export async function requestJson<T = Record<string, unknown>>(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; headers: Headers; body: T }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as T };
}
