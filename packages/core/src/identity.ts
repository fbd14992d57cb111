import { createSecretKey, type KeyObject } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
  SignJWT,
} from 'jose';
import { ChassisError } from './errors.ts';

/**
 * Who is calling, as a verified token says. The gateway verifies the bearer token of an HTTP request and
 * passes the token itself on in the envelope's `auth` header; every service verifies it again, because
 * the transport is not trusted for identity (anyone who can publish on the broker could write a header).
 */
export interface Identity {
  /** The token's `sub`: the user's id, e.g. `alice`. */
  readonly subject: string;
  /** The token's `roles` claim (an array of strings), e.g. `['customer']`; empty when absent. */
  readonly roles: readonly string[];
  /** Every claim of the token, for app-specific ones (e.g. SimpleBank's `accounts`). */
  readonly claims: Readonly<JWTPayload>;
}

/** Verifies a token and says whose it is; rejects with `UNAUTHENTICATED` when it cannot be trusted. */
export type IdentityVerifier = (token: string) => Promise<Identity>;

export type JwtOptions = {
  /** Who must have issued the token (`iss`), if anyone in particular. */
  issuer?: string;
  /** Who the token must be for (`aud`), if anyone in particular. */
  audience?: string;
  /** Leeway for clocks that disagree, in seconds. Default 5. */
  clockToleranceSeconds?: number;
} & (
  | {
      /** HS256 with a shared secret: development and tests. At least 32 characters. */
      secret: string;
    }
  | {
      /** RS256/ES256 keys as a JSON Web Key Set: production, with the private key only at the issuer. */
      jwks: JSONWebKeySet;
    }
  | {
      /** Where the issuer publishes its JWKS (fetched, cached and refreshed on an unknown `kid`). */
      jwksUrl: string;
    }
);

const MIN_SECRET_LENGTH = 32;

/** A verifier of JWTs with jose: HS256 with a secret, or RS256/ES256 with a JWKS (local or fetched). */
export function jwtVerifier(options: JwtOptions): IdentityVerifier {
  let key: KeyObject | JWTVerifyGetKey;
  let algorithms: string[];
  if ('secret' in options) {
    // Imported once: jose would otherwise import a raw secret on every verification.
    key = createSecretKey(secretKey(options.secret));
    algorithms = ['HS256'];
  } else if ('jwks' in options) {
    key = createLocalJWKSet(options.jwks);
    algorithms = ['RS256', 'ES256'];
  } else {
    key = createRemoteJWKSet(new URL(options.jwksUrl));
    algorithms = ['RS256', 'ES256'];
  }
  const verifyOptions = {
    algorithms,
    clockTolerance: options.clockToleranceSeconds ?? 5,
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
    ...(options.audience === undefined ? {} : { audience: options.audience }),
  };
  // A token is verified at the gateway and again by every service it reaches, many times while it
  // lives: keep what a verification found until the token expires. The key is the whole token, its
  // signature included, so only the very token that was verified finds an entry.
  const verified = new VerifiedTokens();
  return async (token) => {
    const known = verified.get(token);
    if (known) return known;
    let payload: JWTPayload;
    try {
      // jose's overloads split on the key's type; both branches take the same options.
      payload =
        typeof key === 'function'
          ? (await jwtVerify(token, key, verifyOptions)).payload
          : (await jwtVerify(token, key, verifyOptions)).payload;
    } catch (error) {
      throw new ChassisError('UNAUTHENTICATED', `The access token is not valid: ${reasonOf(error)}`, { cause: error });
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw new ChassisError('UNAUTHENTICATED', 'The access token names no subject (sub)');
    }
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [];
    const identity: Identity = { subject: payload.sub, roles, claims: payload };
    verified.set(token, identity, payload.exp);
    return identity;
  };
}

/** Verified tokens until their expiry, at most `max` of them, the oldest dropped first. */
class VerifiedTokens {
  private readonly entries = new Map<string, { identity: Identity; expiresAt: number }>();

  private readonly max: number;

  constructor(max = 10_000) {
    this.max = max;
  }

  get(token: string): Identity | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    // No clock tolerance here: past its expiry a token goes to jose, which applies the tolerance.
    if (entry.expiresAt <= Date.now()) {
      this.entries.delete(token);
      return undefined;
    }
    return entry.identity;
  }

  set(token: string, identity: Identity, exp: number | undefined): void {
    // A token without an expiry is verified every time: nothing says how long it may be believed.
    if (exp === undefined) return;
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(token, { identity, expiresAt: exp * 1000 });
  }
}

/**
 * Signs an HS256 access token: for development, tests and an identity service that shares the secret.
 * Production issuers sign with a private key (RS256) and publish the JWKS instead.
 */
export async function signToken(
  secret: string,
  claims: { sub: string; roles?: readonly string[]; [claim: string]: unknown },
  options: { expiresInSeconds?: number; issuer?: string; audience?: string } = {},
): Promise<string> {
  let jwt = new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(`${options.expiresInSeconds ?? 3600}s`);
  if (options.issuer) jwt = jwt.setIssuer(options.issuer);
  if (options.audience) jwt = jwt.setAudience(options.audience);
  return jwt.sign(secretKey(secret));
}

/**
 * A service's own token (role `system`, subject the service), for work it does on nobody's request or
 * after the caller's token is gone: a saga's steps, a sweep after a crash. Signed with the secret the
 * app's identity service signs with; signed again only when the last one is near its expiry (600 s,
 * renewed after 500 s), not once a call.
 */
export function systemToken(secret: string, service: string): () => Promise<string> {
  let token: { value: string; until: number } | undefined;
  return async () => {
    if (!token || token.until < Date.now()) {
      const value = await signToken(secret, { sub: service, roles: ['system'] }, { expiresInSeconds: 600 });
      token = { value, until: Date.now() + 500_000 };
    }
    return token.value;
  };
}

/**
 * The secret an app signs its tokens with: the first of `variables` set in `env`. Outside production,
 * with none set, `developmentSecret`; in production that is refused, since anyone can read it in the
 * source.
 */
export function tokenSecret(
  env: Record<string, string | undefined>,
  developmentSecret: string,
  variables: readonly string[] = ['CHASSIS_JWT_SECRET'],
): string {
  for (const name of variables) {
    const value = env[name];
    if (value) return value;
  }
  if (env.NODE_ENV === 'production') {
    const [first, ...others] = variables;
    const names = others.length > 0 ? `${first} (or ${others.join(', ')})` : first;
    throw new ChassisError('CONFIG', `${names} must be set in production: tokens would be signed with a public secret`);
  }
  return developmentSecret;
}

/** Throws `FORBIDDEN` unless the identity has one of the roles. */
export function requireRole(identity: Identity | undefined, ...roles: string[]): Identity {
  const user = requireIdentity(identity);
  if (!roles.some((role) => user.roles.includes(role))) {
    throw new ChassisError('FORBIDDEN', `This needs the role ${roles.map((r) => `"${r}"`).join(' or ')}`, {
      data: { required: roles },
    });
  }
  return user;
}

/** Throws `UNAUTHENTICATED` when nobody verified is calling. */
export function requireIdentity(identity: Identity | undefined): Identity {
  if (!identity) throw new ChassisError('UNAUTHENTICATED', 'This needs a valid access token');
  return identity;
}

function secretKey(secret: string): Uint8Array {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new ChassisError(
      'CONFIG',
      `An HS256 secret must be at least ${MIN_SECRET_LENGTH} characters; this one has ${secret.length}`,
    );
  }
  return new TextEncoder().encode(secret);
}

function reasonOf(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'it has expired';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'its signature does not match';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `its "${error.claim}" claim ${error.reason}`;
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'it is signed with an algorithm not accepted here';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'no known key signed it';
  if (error instanceof joseErrors.JWSInvalid || error instanceof joseErrors.JWTInvalid) return 'it is malformed';
  return error instanceof Error ? error.message : String(error);
}
