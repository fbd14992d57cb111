// A Stryker ignorer for mutants no test should kill, so they do not drag the score down or crowd the
// survivors list: log calls (what is logged is not a guarantee; metrics and outcomes are) and the
// human-readable message of an error (the code, status and retryable flag are the contract, and stay
// mutated). An error's code argument is never ignored. An `if` that only chooses between log calls is
// ignored with them.
import { declareValuePlugin, PluginKind } from '@stryker-mutator/api/plugin';

const logLevels = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'log']);
const loggerNames = new Set(['log', 'logger', 'console']);
// Constructors and factories whose first argument is the message.
const messageFirst = new Set(['Error', 'TypeError', 'RangeError', 'AggregateError']);

function nameOf(node) {
  if (!node) return undefined;
  if (node.type === 'Identifier') return node.name;
  if (node.type === 'MemberExpression' && !node.computed && node.property.type === 'Identifier') {
    return node.property.name;
  }
  return undefined;
}

function isLogCall(node) {
  if (node.type !== 'CallExpression' || node.callee.type !== 'MemberExpression') return false;
  const level = nameOf(node.callee);
  return level !== undefined && logLevels.has(level) && loggerNames.has(nameOf(node.callee.object) ?? '');
}

/** A statement that only logs: a log call, or a block of nothing but log calls. */
function onlyLogs(node) {
  if (!node) return true;
  if (node.type === 'ExpressionStatement') return isLogCall(node.expression);
  if (node.type === 'BlockStatement') return node.body.every(onlyLogs);
  if (node.type === 'IfStatement') return onlyLogs(node.consequent) && onlyLogs(node.alternate);
  return false;
}

function isErrorMessage(path) {
  const { node, parent } = path;
  if (node.type !== 'StringLiteral' && node.type !== 'TemplateLiteral') return false;
  if (path.listKey !== 'arguments' || typeof path.key !== 'number') return false;
  if (parent.type !== 'NewExpression' && parent.type !== 'CallExpression') return false;
  const callee = nameOf(parent.callee);
  if (callee === undefined) return false;
  if (messageFirst.has(callee)) return path.key === 0;
  // ChassisError(code, message), chassisError(code, message), HandlerTimeout-style subclasses.
  if (/Error$/.test(callee)) return path.key >= 1;
  // A domain error made by defineError is called as `InsufficientShares(message, data)` and thrown.
  if (/^[A-Z]/.test(callee) && parent.type === 'CallExpression' && path.parentPath?.parent?.type === 'ThrowStatement') {
    return path.key === 0;
  }
  return false;
}

const chassisEquivalent = {
  shouldIgnore(path) {
    if (isLogCall(path.node)) return 'A log call: what is logged is not a guarantee.';
    // Choosing between log levels: `if (internal) log.error(...) else log.debug(...)`.
    if (path.node.type === 'IfStatement' && onlyLogs(path.node)) return 'Only chooses what is logged.';
    if (isErrorMessage(path)) return "An error's message: its code, status and retryable flag are the contract.";
    return undefined;
  },
};

export const strykerPlugins = [declareValuePlugin(PluginKind.Ignore, 'chassis-equivalent', chassisEquivalent)];
