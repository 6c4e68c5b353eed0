// Trace context of a request (assembly/plugin/tracing.ts): request id kept or generated, the
// incoming W3C/B3 context continued or a new one started, and our span written on in every
// configured format.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MapType } from "../../harness/proxywasm.ts";
import { clientRequest, clientSidecar, serverSidecar, throughPair, tracingAt } from "../../harness/sidecar-vms.ts";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";

describe("trace headers", () => {
  test("a new trace: traceparent, tracestate and B3 multi written with one trace and span id", () => {
    const client = clientSidecar({ config: tracingAt(100) });
    const s = client.http();
    s.requestHeaders(clientRequest());
    const tp = s.header("traceparent")!;
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(tp);
    assert.ok(m, tp);
    assert.equal(s.header("x-b3-traceid"), m[1]);
    assert.equal(s.header("x-b3-spanid"), m[2]);
    assert.equal(s.header("x-b3-sampled"), "1");
    assert.equal(s.header("tracestate"), `mtw=${m[2]}`);
    assert.equal(s.header("x-b3-parentspanid"), undefined, "a root span has no parent");
    assert.equal(s.header("x-request-id"), clientRequest()[6][1], "Envoy's request id kept");
  });

  test("an incoming W3C context is continued: same trace, our span's parent is the caller's", () => {
    const server = serverSidecar({ config: tracingAt(1) });
    const s = server.http();
    s.requestHeaders([
      ...clientRequest(),
      ["traceparent", `00-${TRACE_ID}-${PARENT}-01`], ["x-b3-traceid", TRACE_ID], ["x-b3-spanid", PARENT], ["x-b3-sampled", "1"],
    ]);
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(s.header("traceparent")!)!;
    assert.equal(m[1], TRACE_ID);
    assert.notEqual(m[2], PARENT);
    assert.equal(s.header("x-b3-parentspanid"), PARENT);
    assert.equal(s.header("x-b3-sampled"), "1", "the caller's decision wins over 1 %");
    // Headers that already hold the value are not rewritten (a host call each saved).
    assert.deepEqual(server.headerWrites.map((w) => w.key).sort(), ["traceparent", "tracestate", "x-b3-parentspanid", "x-b3-spanid"]);
  });

  test("a missing x-request-id is generated (a UUID v4)", () => {
    const client = clientSidecar({ config: tracingAt(1) });
    const s = client.http();
    s.requestHeaders(clientRequest().filter(([k]) => k !== "x-request-id"));
    assert.match(s.header("x-request-id")!, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  test("malformed trace headers start a fresh trace and are counted; the request goes on", () => {
    const server = serverSidecar({ config: tracingAt(1) });
    const s = server.http();
    s.requestHeaders([...clientRequest(), ["traceparent", "00-zzzz-not-a-context"]]);
    assert.match(s.header("traceparent")!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    assert.ok(!s.header("traceparent")!.includes("zzzz"));
    assert.equal(server.metricValue("mesh_telemetry_trace_headers_invalid_total"), 1n);
  });

  test("write_formats: only b3 single when asked", () => {
    const client = clientSidecar({ config: { tracing: { random_sampling_percentage: 100, write_formats: ["b3"] } } });
    const s = client.http();
    s.requestHeaders(clientRequest());
    assert.match(s.header("b3")!, /^[0-9a-f]{32}-[0-9a-f]{16}-1$/);
    assert.equal(s.header("traceparent"), undefined);
    assert.equal(s.header("x-b3-traceid"), undefined);
  });

  test("tracing off: no trace header touched", () => {
    const client = clientSidecar({ config: { tracing: { enabled: false } } });
    const { server } = throughPair(client, serverSidecar({ config: { tracing: { enabled: false } } }));
    assert.equal(server.header("traceparent"), undefined);
    assert.deepEqual(client.headerWrites.map((w) => w.key).filter((k) => !k.startsWith("x-envoy-peer")), []);
    assert.equal(server.header("x-envoy-peer-metadata", MapType.ResponseHeaders) !== undefined, true);
  });
});
