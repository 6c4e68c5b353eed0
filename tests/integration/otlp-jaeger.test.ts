// OTLP span export through a chain of real Envoy sidecars into a real Jaeger v2 (OTLP/HTTP
// receiver, in-memory storage), read back through Jaeger's query API: a gateway ->
// productpage -> reviews and ratings, the apps forwarding trace headers. One trace, the right
// parent/child tree, span kinds, service names and namespace, OpenTelemetry HTTP attributes
// beside Istio's tags, tracestate, ERROR status on a 5xx, and durations that nest.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { eventually, httpRequest, staticCluster } from "../harness/envoy.ts";
import { startTracedChain, type TracedChain } from "../harness/chain.ts";
import { startJaeger, type Jaeger, type JaegerSpan, type JaegerTrace } from "../harness/jaeger.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";
import { slowestJaegerTrace, formatTraceTree } from "../harness/tools.ts";

let jaeger: Jaeger;
let chain: TracedChain;

before(async () => {
  jaeger = await startJaeger();
  const plugin = { config: { tracing: { random_sampling_percentage: 100, otlp: { cluster: "jaeger-otlp" }, flush_interval: "200ms", custom_tags: { team: { literal: { value: "bookinfo" } } } } } };
  chain = await startTracedChain(plugin, [staticCluster("jaeger-otlp", jaeger.otlpPort)]);
});

after(async () => {
  await chain?.stop();
  await jaeger?.stop();
});

/** The trace whose gateway span carries this request id, once it has `spans` spans. */
async function traceOf(requestId: string, spans: number): Promise<JaegerTrace> {
  return eventually(`${spans} spans in Jaeger for request id ${requestId}`, async () => {
    const found = await jaeger.traces("istio-ingressgateway", { "guid:x-request-id": requestId });
    if (found.length !== 1) return undefined;
    const full = await jaeger.trace(found[0].traceID);
    return full !== undefined && full.spans.length >= spans ? full : undefined;
  }, 30000);
}

function tag(s: JaegerSpan, key: string): string | number | boolean | undefined {
  return s.tags.find((t) => t.key === key)?.value;
}

function parentOf(s: JaegerSpan): string | undefined {
  return s.references.find((r) => r.refType === "CHILD_OF")?.spanID;
}

test("one trace in Jaeger across all hops: tree, kinds, services, OpenTelemetry and Istio attributes, nested times", async () => {
  const requestId = "0e7a0c1d-2222-4333-8444-555555555555";
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const res = await httpRequest(`${chain.url}/productpage?u=normal`, {
    headers: { "x-request-id": requestId, traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: "vendor=opaque" },
  });
  assert.equal(res.status, 200);
  const trace = await traceOf(requestId, 6);
  const spans = trace.spans;
  assert.equal(trace.traceID, traceId, "the caller's trace continued");
  assert.equal(spans.length, 6, JSON.stringify(spans.map((s) => s.operationName)));
  const service = (s: JaegerSpan) => trace.processes[s.processID].serviceName;
  const byId = new Map(spans.map((s) => [s.spanID, s]));
  const childrenOf = (id: string) => spans.filter((s) => parentOf(s) === id);

  // The gateway's span is the child of the caller's (which Jaeger never received).
  const [gw] = spans.filter((s) => parentOf(s) === "00f067aa0ba902b7");
  assert.ok(gw, "the gateway span's parent is the caller's span");
  assert.equal(service(gw), "istio-ingressgateway");
  assert.equal(tag(gw, "span.kind"), "client");
  // Jaeger notes only that the caller's span is not in its store.
  for (const s of spans) assert.deepEqual(s.warnings ?? [], s === gw ? ["invalid parent span IDs=00f067aa0ba902b7; skipping clock skew adjustment"] : [], `Jaeger's warnings on ${s.operationName}`);
  const [ppServer] = childrenOf(gw.spanID);
  assert.equal(service(ppServer), "productpage");
  assert.equal(tag(ppServer, "span.kind"), "server");
  const ppClients = childrenOf(ppServer.spanID);
  assert.equal(ppClients.length, 2, "productpage calls reviews and ratings");
  const leafServices = new Set<string>();
  for (const c of ppClients) {
    assert.equal(service(c), "productpage");
    assert.equal(tag(c, "span.kind"), "client");
    const [server] = childrenOf(c.spanID);
    assert.equal(tag(server, "span.kind"), "server");
    leafServices.add(service(server));
    assert.equal(childrenOf(server.spanID).length, 0);
    assert.equal(tag(c, "url.path"), "/item");
    assert.equal(tag(c, "url.query"), "id=7");
    assert.equal(tag(c, "server.address"), "127.0.0.1", "the app called its sidecar by address");
  }
  assert.deepEqual([...leafServices].sort(), ["ratings", "reviews"]);

  // The resource: service.name is the canonical service, beside the namespace.
  const ns = (s: JaegerSpan) => trace.processes[s.processID].tags.find((t) => t.key === "k8s.namespace.name")?.value;
  assert.equal(ns(gw), "istio-system");
  assert.equal(ns(ppServer), "default");

  for (const s of spans) {
    // OpenTelemetry's HTTP conventions, typed as OTLP carried them.
    assert.equal(tag(s, "http.request.method"), "GET");
    assert.equal(tag(s, "http.response.status_code"), 200);
    assert.equal(s.tags.find((t) => t.key === "http.response.status_code")?.type, "int64");
    assert.equal(tag(s, "url.scheme"), "http");
    assert.ok(typeof tag(s, "network.peer.address") === "string" && String(tag(s, "network.peer.address")).startsWith("127."), `${s.operationName} peer`);
    assert.equal(typeof tag(s, "network.peer.port"), "number");
    assert.ok(tag(s, "server.address"), `${s.operationName} server.address`);
    assert.equal(tag(s, "otel.status_code"), undefined, "a 200 leaves the status unset");
    // Istio's tags beside them.
    assert.equal(tag(s, "guid:x-request-id"), requestId);
    assert.equal(tag(s, "http.status_code"), "200");
    assert.equal(tag(s, "component"), "proxy");
    assert.equal(tag(s, "team"), "bookinfo");
    assert.ok(String(tag(s, "node_id")).startsWith("sidecar~"));
    assert.ok(tag(s, "istio.canonical_service"));
    // The tracestate sent on with the span: ours first, the caller's entry kept.
    assert.match(String(tag(s, "w3c.tracestate")), /^mtw=[^,]+,vendor=opaque$/, `${s.operationName} tracestate`);
    assert.ok(s.duration > 0);
    const parent = byId.get(parentOf(s) ?? "");
    if (parent) {
      // A child starts after its parent and ends before it (1 ms slack for clock granularity).
      assert.ok(s.startTime >= parent.startTime - 1000, `${s.operationName} starts within its parent`);
      assert.ok(s.startTime + s.duration <= parent.startTime + parent.duration + 1000, `${s.operationName} ends within its parent`);
    }
  }
  assert.equal(tag(gw, "url.path"), "/productpage");
  assert.equal(tag(gw, "url.query"), "u=normal");
  assert.equal(tag(gw, "server.address"), "127.0.0.1");
  assert.equal(tag(gw, "server.port"), chain.gateway.outboundPorts.productpage);
  assert.equal(tag(gw, "upstream_cluster"), "outbound|80||productpage.default.svc.cluster.local");
  assert.equal(tag(ppServer, "istio.canonical_service"), "productpage");
  assert.equal(gw.operationName, `127.0.0.1:${chain.gateway.outboundPorts.productpage}/productpage`);
});

test("a 5xx answer makes the span's status ERROR with error.type; its callees' spans stay unset", async () => {
  const requestId = "0e7a0c1d-2222-4333-8444-666666666666";
  const res = await httpRequest(`${chain.url}/fail`, { headers: { "x-request-id": requestId } });
  assert.equal(res.status, 503);
  const trace = await traceOf(requestId, 6);
  const failed = trace.spans.filter((s) => tag(s, "http.response.status_code") === 503);
  assert.equal(failed.length, 2, "the gateway's and productpage's spans");
  for (const s of failed) {
    assert.equal(tag(s, "otel.status_code"), "ERROR");
    assert.equal(String(tag(s, "error")), "true", "Istio's error tag (string) besides the OTLP status");
    assert.equal(tag(s, "error.type"), "503");
  }
  const ok = trace.spans.filter((s) => tag(s, "http.response.status_code") === 200);
  assert.equal(ok.length, 4);
  for (const s of ok) assert.equal(tag(s, "otel.status_code"), undefined);
});

test("every exported span is counted as reported, none dropped", async () => {
  const counts = await eventually("OTLP counters settled", async () => {
    let reported = 0;
    let dropped = 0;
    for (const s of chain.sidecars) {
      const samples = parsePrometheus(await s.envoy.prometheus());
      reported += sum(select(samples, "mesh_telemetry_otlp_spans_reported_total"));
      dropped += sum(select(samples, "mesh_telemetry_otlp_spans_dropped_total"));
    }
    return reported === 12 ? { reported, dropped } : undefined;
  });
  assert.deepEqual(counts, { reported: 12, dropped: 0 });
});

test("the demo's reader (DEMO_TRACING=jaeger) draws a trace Jaeger holds as the tree of its six spans", async () => {
  const spans = await slowestJaegerTrace(jaeger);
  assert.ok(spans, "a trace through the gateway");
  assert.equal(spans.length, 6);
  const lines = formatTraceTree(spans).split("\n");
  assert.match(lines[0], /^trace [0-9a-f]{32}: 6 spans, /);
  assert.match(lines[1], /^  \S+\/(productpage|fail)\S*  \[istio-ingressgateway CLIENT\] (200|503)/);
  assert.match(lines[2], /^    \S+  \[productpage SERVER\]/);
  assert.equal(lines.filter((l) => /^      \S+  \[productpage CLIENT\]/.test(l)).length, 2);
  assert.equal(lines.filter((l) => /^        \S+  \[(reviews|ratings) SERVER\]/.test(l)).length, 2);
});
