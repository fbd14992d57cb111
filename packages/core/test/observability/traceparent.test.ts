import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Tracing } from '@chassis/core';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

const propagator = new W3CTraceContextPropagator();
const getter = {
  keys: (c: Record<string, string>) => Object.keys(c),
  get: (c: Record<string, string>, k: string) => c[k],
};

/** What OpenTelemetry's W3C propagator makes of a header: the reading a message's trace context must match. */
function reference(traceparent: string) {
  return trace.getSpan(propagator.extract(ROOT_CONTEXT, { traceparent }, getter))?.spanContext();
}

const trace32 = '4bf92f3577b34da6a3ce929d0e0e4736';
const span16 = '00f067aa0ba902b7';
const headers = [
  `00-${trace32}-${span16}-01`,
  `00-${trace32}-${span16}-00`,
  `00-${trace32}-${span16}-03`,
  ` 00-${trace32}-${span16}-01 `,
  `01-${trace32}-${span16}-01-what-comes-next`,
  `00-${trace32}-${span16}-01-extra`,
  `ff-${trace32}-${span16}-01`,
  `00-${'0'.repeat(32)}-${span16}-01`,
  `00-${trace32}-${'0'.repeat(16)}-01`,
  `00-${trace32.toUpperCase()}-${span16}-01`,
  `00-${trace32}-${span16}-0g`,
  `00-${trace32}-${span16}-1`,
  `00-${trace32}-${span16}01`,
  `00-${trace32.slice(1)}-${span16}-01`,
  `00_${trace32}-${span16}-01`,
  `00-${trace32}-${span16}-01x`,
  '',
  'garbage',
];

it('reads a traceparent as OpenTelemetry’s W3C propagator does: the same context, or none, for every header', () => {
  const tracing = new Tracing(undefined);
  for (const header of headers) {
    const expected = reference(header);
    const span = tracing.extract({ traceparent: header });
    const actual = span.spanContext();
    if (expected === undefined) {
      assert.equal(actual.traceId, '00000000000000000000000000000000', `"${header}" names no context`);
    } else {
      assert.deepEqual(
        { traceId: actual.traceId, spanId: actual.spanId, traceFlags: actual.traceFlags, isRemote: actual.isRemote },
        { traceId: expected.traceId, spanId: expected.spanId, traceFlags: expected.traceFlags, isRemote: true },
        `"${header}"`,
      );
    }
  }
});

it('a trace state goes with its traceparent', () => {
  const span = new Tracing(undefined).extract({ traceparent: `00-${trace32}-${span16}-01`, tracestate: 'vendor=abc' });
  assert.equal(span.spanContext().traceId, trace32);
  assert.equal(span.spanContext().traceState?.get('vendor'), 'abc');
});
