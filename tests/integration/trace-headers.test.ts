// Trace headers as the application sees them behind the plugin (one real Envoy): W3C and B3
// written consistently, incoming context continued, upstream decisions honoured, invalid
// headers replaced by a fresh trace and counted, and the sampling rate at 0%, 100% and 30%.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  eventually, freePort, httpListener, httpRequest, staticCluster, startEnvoy, startUpstream, wasmHttpFilter, type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";

let app: Upstream;
let envoy: Envoy;
const ports: Record<string, number> = {};

const listeners: Record<string, unknown> = {
  all: { tracing: { random_sampling_percentage: 100 } },
  none: { tracing: { random_sampling_percentage: 0 } },
  thirty: { tracing: { random_sampling_percentage: 30 } },
  w3conly: { tracing: { random_sampling_percentage: 100, write_formats: ["w3c"] } },
  // Spans to a collector that refuses connections, with a small buffer.
  deadcollector: { tracing: { random_sampling_percentage: 100, zipkin: { cluster: "deadzipkin" }, flush_interval: "100ms", max_batch_spans: 5, max_buffered_spans: 20 } },
};

before(async () => {
  app = await startUpstream();
  for (const name of Object.keys(listeners)) ports[name] = await freePort();
  envoy = await startEnvoy({
    name: "trace-headers",
    listeners: Object.entries(listeners).map(([name, config]) =>
      httpListener({ name, port: ports[name], direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ config, pluginName: name })] }),
    ),
    clusters: [staticCluster("app", app.port), staticCluster("deadzipkin", 9)],
  });
});

after(async () => {
  await envoy?.stop();
  await app?.close();
});

/** Sends one request and returns the headers the app received. */
async function seen(listener: string, headers: Record<string, string> = {}): Promise<Record<string, string>> {
  const res = await httpRequest(`http://127.0.0.1:${ports[listener]}/`, { headers });
  assert.equal(res.status, 200);
  return app.requests.at(-1)!.headers as Record<string, string>;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

test("a request without context starts a trace written as W3C and B3 with the same ids", async () => {
  const h = await seen("all");
  const [, traceId, spanId, flags] = TRACEPARENT.exec(h.traceparent)!;
  assert.equal(h["x-b3-traceid"], traceId);
  assert.equal(h["x-b3-spanid"], spanId);
  assert.equal(h["x-b3-sampled"], "1");
  assert.equal(flags, "01");
  assert.equal(h["x-b3-parentspanid"], undefined, "a root has no parent");
  assert.equal(h.tracestate, `mtw=${spanId}`);
  assert.match(h["x-request-id"], /^[0-9a-f-]{36}$/);
});

test("an incoming W3C context is continued: same trace, new span, caller as parent, tracestate kept", async () => {
  const incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const h = await seen("all", { traceparent: incoming, tracestate: "congo=t61rcWkgMzE,mtw=0000000000000001" });
  const [, traceId, spanId] = TRACEPARENT.exec(h.traceparent)!;
  assert.equal(traceId, "0af7651916cd43dd8448eb211c80319c");
  assert.notEqual(spanId, "b7ad6b7169203331");
  assert.equal(h["x-b3-parentspanid"], "b7ad6b7169203331");
  assert.equal(h.tracestate, `mtw=${spanId},congo=t61rcWkgMzE`, "our entry updated and moved to the left");
});

test("B3 contexts are continued; a 64-bit trace id stays 64-bit in B3 and is padded in W3C", async () => {
  const multi = await seen("all", { "x-b3-traceid": "463ac35c9f6413ad", "x-b3-spanid": "a2fb4a1d1a96d312", "x-b3-sampled": "1" });
  assert.equal(multi["x-b3-traceid"], "463ac35c9f6413ad");
  assert.equal(multi["x-b3-parentspanid"], "a2fb4a1d1a96d312");
  assert.equal(TRACEPARENT.exec(multi.traceparent)![1], "0000000000000000463ac35c9f6413ad");
  const single = await seen("all", { b3: "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90" });
  assert.equal(single["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
  assert.equal(single["x-b3-parentspanid"], "e457b5a2e4d86bd1");
});

test("upstream sampling decisions are honoured, and debug forces sampling", async () => {
  const denied = await seen("all", { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00" });
  assert.equal(denied["x-b3-sampled"], "0");
  assert.match(denied.traceparent, /-00$/);
  const b3Deny = await seen("all", { b3: "0" });
  assert.equal(b3Deny["x-b3-sampled"], "0");
  const debug = await seen("none", { "x-b3-traceid": "463ac35c9f6413ad", "x-b3-spanid": "a2fb4a1d1a96d312", "x-b3-flags": "1" });
  assert.equal(debug["x-b3-flags"], "1");
  assert.match(debug.traceparent, /-01$/, "debug is sampled even at 0%");
  const accepted = await seen("none", { "x-b3-traceid": "463ac35c9f6413ad", "x-b3-spanid": "a2fb4a1d1a96d312", "x-b3-sampled": "1" });
  assert.equal(accepted["x-b3-sampled"], "1", "an upstream yes wins over 0%");
});

test("invalid or conflicting headers never fail the request: a fresh trace starts and the event is counted", async () => {
  const before = sum(select(parsePrometheus(await envoy.prometheus()), "mesh_telemetry_trace_headers_invalid_total"));
  const bad: Array<Record<string, string>> = [
    { traceparent: "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01" },
    { traceparent: "00-00000000000000000000000000000000-b7ad6b7169203331-01" },
    { traceparent: "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
    { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01,00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
    { b3: "not-a-b3-value" },
    { "x-b3-traceid": "xyz", "x-b3-spanid": "a2fb4a1d1a96d312" },
    { "x-b3-traceid": "463ac35c9f6413ad463ac35c9f6413ad463", "x-b3-spanid": "a2fb4a1d1a96d312" },
    { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", b3: "1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1" },
  ];
  for (const headers of bad) {
    const h = await seen("all", headers);
    const m = TRACEPARENT.exec(h.traceparent);
    assert.ok(m, `a valid traceparent after ${JSON.stringify(headers)}`);
  }
  const after = sum(select(parsePrometheus(await envoy.prometheus()), "mesh_telemetry_trace_headers_invalid_total"));
  assert.equal(after - before, bad.length);
});

test("write_formats limits what is written: W3C only", async () => {
  const h = await seen("w3conly", { "x-b3-traceid": "463ac35c9f6413ad", "x-b3-spanid": "a2fb4a1d1a96d312" });
  assert.match(h.traceparent, TRACEPARENT);
  assert.equal(TRACEPARENT.exec(h.traceparent)![1], "0000000000000000463ac35c9f6413ad", "read from B3");
  assert.equal(h["x-b3-spanid"], "a2fb4a1d1a96d312", "B3 passed through untouched, not rewritten");
});

test("sampling rate: 0% none, 100% all, 30% within binomial bounds; non-UUID request ids do not matter", async () => {
  const n = 400;
  const rate = async (listener: string) => {
    let sampled = 0;
    for (let i = 0; i < n; i++) {
      const h = await seen(listener, { "x-request-id": `not-a-uuid-${i}` });
      assert.equal(h["x-request-id"], `not-a-uuid-${i}`, "a usable request id is kept");
      if (h["x-b3-sampled"] === "1") sampled++;
    }
    return sampled;
  };
  assert.equal(await rate("none"), 0);
  assert.equal(await rate("all"), n);
  const thirty = await rate("thirty");
  // mean 120, sd 9.2: +-4.5 sd
  assert.ok(thirty >= 79 && thirty <= 161, `${thirty} of ${n} sampled at 30%`);
});

test("a failed collector never affects traffic: spans are dropped and counted, memory stays bounded", async () => {
  const n = 200;
  for (let i = 0; i < n; i++) {
    const res = await httpRequest(`http://127.0.0.1:${ports.deadcollector}/`);
    assert.equal(res.status, 200);
  }
  const dropped = await eventually("every span accounted as dropped", async () => {
    const d = sum(select(parsePrometheus(await envoy.prometheus()), "mesh_telemetry_spans_dropped_total"));
    return d === n ? d : undefined;
  });
  assert.equal(dropped, n);
  assert.equal(sum(select(parsePrometheus(await envoy.prometheus()), "mesh_telemetry_spans_reported_total")), 0);
});
