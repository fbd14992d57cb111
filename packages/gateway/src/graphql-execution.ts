import { ChassisError, toChassisError } from '@chassis/core';
import {
  buildSchema,
  type DocumentNode,
  type ExecutionResult,
  execute,
  type FormattedExecutionResult,
  GraphQLError,
  type GraphQLFormattedError,
  GraphQLInterfaceType,
  GraphQLObjectType,
  GraphQLScalarType,
  type GraphQLSchema,
  GraphQLUnionType,
  getOperationAST,
  Kind,
  parse,
  type SelectionSetNode,
  validate,
} from 'graphql';
import { errorBody } from './errors.ts';
import type { GraphqlContext, GraphqlResolvers } from './graphql.ts';

/**
 * What runs a GraphQL request, on graphql-js itself: loaded by the endpoint on its first request (see
 * graphql.ts), so a gateway nobody asks a GraphQL question holds none of it.
 */

/** A GraphQL request as GET's query string or POST's JSON body gives it. */
export interface GraphqlRequest {
  method: string;
  /** The query string's or the body's fields: `query`, `variables`, `operationName`. */
  params: unknown;
}

/** The answer: its status and body, and the codes of its errors (for the request histogram and the log). */
export interface GraphqlAnswer {
  status: number;
  body: FormattedExecutionResult;
  /** The first error's code, or undefined when nothing failed. */
  outcome: string | undefined;
  /** What failed inside a field for a reason the caller is not told (INTERNAL), to log. */
  internalFailures: { cause: unknown; path: readonly (string | number)[] | undefined }[];
}

export interface GraphqlExecutor {
  /**
   * The request's document, parsed and validated, or the answer refusing it (400, or 405 for a mutation
   * by GET): what the endpoint decides before it builds a context.
   */
  prepare(request: GraphqlRequest): Prepared | GraphqlAnswer;
  run(prepared: Prepared, context: GraphqlContext, requestId: string): Promise<GraphqlAnswer>;
  /** The body refusing a whole request for a reason of the gateway's (a token that does not verify). */
  refusal(error: ChassisError, requestId: string): FormattedExecutionResult;
}

export interface Prepared {
  document: DocumentNode;
  variables: Record<string, unknown> | undefined;
  operationName: string | undefined;
}

/** Validated documents by query text, the most recent kept: a client sends the same few queries. */
const DOCUMENTS_KEPT = 256;

export function graphqlExecutor(sdl: string, resolvers: GraphqlResolvers, maxDepth: number): GraphqlExecutor {
  const schema = schemaWith(sdl, resolvers);
  const documents = new Map<string, DocumentNode>();
  return {
    prepare({ method, params }) {
      const fields = (params ?? {}) as Record<string, unknown>;
      if (typeof params !== 'object' || Array.isArray(params)) {
        return refusal('A GraphQL request is one JSON object: { query, variables, operationName }');
      }
      const { query, operationName } = fields;
      if (typeof query !== 'string' || query.length === 0) return refusal('Missing query');
      if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') {
        return refusal('operationName must be a string');
      }
      let variables = fields.variables;
      if (typeof variables === 'string' && variables !== '') {
        // GET carries them as JSON in the query string.
        try {
          variables = JSON.parse(variables);
        } catch {
          return refusal('variables is not valid JSON');
        }
      }
      if (
        variables !== undefined &&
        variables !== null &&
        (typeof variables !== 'object' || Array.isArray(variables))
      ) {
        return refusal('variables must be an object');
      }
      let document = documents.get(query);
      if (document) {
        // Most recent last: what is reused stays.
        documents.delete(query);
      } else {
        const checked = checkedDocument(schema, query, maxDepth);
        if (Array.isArray(checked)) return refused(checked);
        document = checked;
      }
      documents.set(query, document);
      if (documents.size > DOCUMENTS_KEPT) documents.delete(documents.keys().next().value!);
      const name = typeof operationName === 'string' ? operationName : undefined;
      if (method === 'GET' && getOperationAST(document, name)?.operation !== 'query') {
        // A GET must not change anything: a link or an image tag could send it.
        return { ...refusal('Only a query may be sent by GET; send a mutation by POST'), status: 405 };
      }
      return {
        document,
        variables: (variables ?? undefined) as Record<string, unknown> | undefined,
        operationName: name,
      };
    },
    async run({ document, variables, operationName }, context, requestId) {
      const execution = await execute({
        schema,
        document,
        contextValue: context,
        variableValues: variables,
        operationName,
      });
      return answerOf(execution, requestId);
    },
    refusal: (error, requestId) => ({ errors: [chassisFormatted(error, requestId)] }),
  };
}

/** The schema from its SDL with the resolvers set on its fields, and custom scalars' behaviour on theirs. */
function schemaWith(sdl: string, resolvers: GraphqlResolvers): GraphQLSchema {
  const schema = buildSchema(sdl);
  for (const [typeName, given] of Object.entries(resolvers)) {
    const type = schema.getType(typeName);
    if (!type) throw new ChassisError('CONFIG', `GraphQL resolvers name a type the schema lacks: ${typeName}`);
    if (given instanceof GraphQLScalarType) {
      if (!(type instanceof GraphQLScalarType)) {
        throw new ChassisError('CONFIG', `GraphQL resolvers give a scalar for ${typeName}, which is not one`);
      }
      type.serialize = given.serialize;
      type.parseValue = given.parseValue;
      type.parseLiteral = given.parseLiteral;
      continue;
    }
    if (type instanceof GraphQLInterfaceType || type instanceof GraphQLUnionType) {
      const resolveType = (given as Record<string, unknown>).__resolveType;
      if (typeof resolveType === 'function') type.resolveType = resolveType as GraphQLInterfaceType['resolveType'];
      continue;
    }
    if (!(type instanceof GraphQLObjectType)) {
      throw new ChassisError('CONFIG', `GraphQL resolvers are given for ${typeName}, which has no fields`);
    }
    const fields = type.getFields();
    for (const [fieldName, resolve] of Object.entries(given)) {
      const field = fields[fieldName];
      if (!field) throw new ChassisError('CONFIG', `GraphQL resolvers name a field ${typeName} lacks: ${fieldName}`);
      field.resolve = resolve as (typeof field)['resolve'];
    }
  }
  return schema;
}

/** The query parsed and validated, depth included, or what is wrong with it. */
function checkedDocument(
  schema: GraphQLSchema,
  query: string,
  maxDepth: number,
): DocumentNode | GraphQLFormattedError[] {
  let document: DocumentNode;
  try {
    document = parse(query);
  } catch (error) {
    return [validationError(error as { message: string; locations?: GraphQLFormattedError['locations'] })];
  }
  const problems = validate(schema, document);
  if (problems.length > 0) return problems.map(validationError);
  const tooDeep: GraphQLFormattedError[] = [];
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
    const depth = depthOf(definition.selectionSet, document);
    if (depth > maxDepth) {
      const name = definition.name?.value ?? 'the';
      tooDeep.push(
        validationError({ message: `${name} query is ${depth} fields deep, deeper than the limit of ${maxDepth}` }),
      );
    }
  }
  return tooDeep.length > 0 ? tooDeep : document;
}

/**
 * How deep a selection nests: a field or an inline fragment is one level, a fragment spread none of its
 * own (it stands for its fragment's selections). Called after validation, which refuses fragment cycles.
 */
function depthOf(selectionSet: SelectionSetNode | undefined, document: DocumentNode): number {
  let deepest = 0;
  for (const selection of selectionSet?.selections ?? []) {
    if (selection.kind === Kind.FRAGMENT_SPREAD) {
      const fragment = document.definitions.find(
        (d) => d.kind === Kind.FRAGMENT_DEFINITION && d.name.value === selection.name.value,
      );
      if (fragment?.kind === Kind.FRAGMENT_DEFINITION) {
        deepest = Math.max(deepest, depthOf(fragment.selectionSet, document));
      }
    } else {
      deepest = Math.max(deepest, 1 + depthOf(selection.selectionSet, document));
    }
  }
  return deepest;
}

/** A request refused before execution: 400 and the problem. */
function refusal(message: string): GraphqlAnswer {
  return refused([validationError({ message })]);
}

/** A problem with the request itself, where in the query it is when GraphQL says. */
function validationError({
  message,
  locations,
}: {
  message: string;
  locations?: GraphQLFormattedError['locations'] | undefined;
}): GraphQLFormattedError {
  return { message, ...(locations ? { locations } : {}), extensions: { code: 'VALIDATION' } };
}

function refused(errors: GraphQLFormattedError[]): GraphqlAnswer {
  return { status: 400, body: { errors }, outcome: 'VALIDATION', internalFailures: [] };
}

/** Execution results: a failed field is an entry of `errors` beside the data of the others, with status 200. */
function answerOf(execution: ExecutionResult, requestId: string): GraphqlAnswer {
  if (!execution.errors || execution.errors.length === 0) {
    return { status: 200, body: { data: execution.data }, outcome: undefined, internalFailures: [] };
  }
  // No data at all: graphql refused the request before executing it (variables that do not fit, say).
  if (execution.data === undefined) {
    return {
      status: 400,
      body: { errors: execution.errors.map((error) => ({ ...error.toJSON(), extensions: { code: 'VALIDATION' } })) },
      outcome: 'VALIDATION',
      internalFailures: [],
    };
  }
  const internalFailures: GraphqlAnswer['internalFailures'] = [];
  const errors = execution.errors.map((error): GraphQLFormattedError => {
    const cause = error.originalError;
    const where = {
      ...(error.locations ? { locations: error.locations } : {}),
      ...(error.path ? { path: error.path } : {}),
    };
    if (!(cause instanceof ChassisError) || cause.code === 'INTERNAL') {
      internalFailures.push({ cause: cause ?? error, path: error.path });
    }
    // graphql's own complaint about what a resolver returned (a value its type cannot represent): the
    // server's fault, and the message is about the schema, nothing secret.
    if (cause === undefined || cause instanceof GraphQLError) {
      return { message: error.message, ...where, extensions: { code: 'INTERNAL' } };
    }
    return { ...chassisFormatted(toChassisError(cause), requestId), ...where };
  });
  return {
    status: 200,
    body: { data: execution.data, errors },
    outcome: String(errors[0]?.extensions?.code ?? 'INTERNAL'),
    internalFailures,
  };
}

/** A ChassisError as a GraphQL error: the gateway's code, message and details, and never a stack. */
function chassisFormatted(error: ChassisError, requestId: string): GraphQLFormattedError {
  const { code, message, details } = errorBody(error, requestId).error;
  return { message, extensions: { code, ...(details === undefined ? {} : { details }) } };
}
