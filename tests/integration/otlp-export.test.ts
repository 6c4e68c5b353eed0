// OTLP export from a real Envoy sidecar, Zipkin on at the same time, both collectors played by
// loopback servers the test steers: the OTLP body decodes with opentelemetry-proto's generated
// types (tests/harness/otlp-decode) into the spans the Zipkin side got; a collector answering 5xx,
// garbage, partial success or nothing at all never affects traffic, and each span is counted
// once per format.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { eventually, httpRequest, ROOT, staticCluster, startUpstream, type Upstream } from "../harness/envoy.ts";
import { startSidecar, type Sidecar } from "../harness/sidecars.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";
import type { ZipkinSpan } from "../harness/zipkin.ts";

const OTLP_DECODE = join(ROOT, ".cache", "otlp-decode", "otlp-decode");

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** What the OTLP collector stand-in does with the next batches. */
type Behaviour = "ok" | "5xx" | "garbage" | "partial" | "silent";

interface Collector {
  port: number;
  received: Received[];
  behaviour: Behaviour;
  close(): Promise<void>;
}

// ExportTraceServiceResponse{partial_success: {rejected_spans: 1, error_message: "x"}}.
const PARTIAL_SUCCESS = Buffer.from("0a05080112017a", "hex");

async function startCollector(): Promise<Collector> {
  const c: Collector = { port: 0, received: [], behaviour: "ok", close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d) => chunks.push(d));
    req.on("end", () => {
      c.received.push({ path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks) });
      if (c.behaviour === "silent") return; // the plugin's timeout ends the call
      if (c.behaviour === "5xx") return void res.writeHead(503).end("overloaded");
      if (c.behaviour === "garbage") return void res.writeHead(200, { "content-type": "application/x-protobuf" }).end(Buffer.from("\x0b\xff\xff garbage"));
      if (c.behaviour === "partial") return void res.writeHead(200, { "content-type": "application/x-protobuf" }).end(PARTIAL_SUCCESS);
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  c.port = (server.address() as { port: number }).port;
  c.close = () => new Promise<void>((ok) => { server.closeAllConnections(); server.close(() => ok()); });
  return c;
}

let otlp: Collector;
let zipkin: Collector;
let app: Upstream;
let sidecar: Sidecar;

before(async () => {
  if (!existsSync(OTLP_DECODE)) throw new Error(`${OTLP_DECODE} missing: run 'make deps'`);
  otlp = await startCollector();
  zipkin = await startCollector();
  app = await startUpstream();
  sidecar = await startSidecar({
    workload: { workload: "reviews-v2", namespace: "bookinfo", app: "reviews", version: "v2" },
    appPort: app.port,
    plugin: {
      config: {
        tracing: {
          random_sampling_percentage: 100,
          flush_interval: "100ms",
          max_batch_spans: 5,
          zipkin: { cluster: "zipkin" },
          otlp: { cluster: "otlp", authority: "collector.example:4318", timeout: "300ms", headers: { "X-Scope-OrgID": "tenant-7" } },
        },
      },
    },
    clusters: [staticCluster("zipkin", zipkin.port), staticCluster("otlp", otlp.port)],
  });
});

after(async () => {
  await sidecar?.envoy.stop();
  await app?.close();
  await otlp?.close();
  await zipkin?.close();
});

function decode(body: Buffer): any {
  const run = spawnSync(OTLP_DECODE, [], { input: body, encoding: "utf8" });
  assert.equal(run.status, 0, `otlp-decode: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

async function counters(): Promise<Record<string, number>> {
  const s = parsePrometheus(await sidecar.envoy.prometheus());
  const names = ["mesh_telemetry_otlp_spans_reported_total", "mesh_telemetry_otlp_spans_dropped_total", "mesh_telemetry_spans_reported_total", "mesh_telemetry_spans_dropped_total"];
  return Object.fromEntries(names.map((n) => [n.replace("mesh_telemetry_", "").replace("_total", ""), sum(select(s, n))]));
}

function attributes(list: Array<{ key: string; value: Record<string, unknown> }>): Record<string, unknown> {
  return Object.fromEntries(list.map((a) => [a.key, Object.values(a.value)[0]]));
}

test("both formats at once: the OTLP body decodes with opentelemetry-proto's types into Zipkin's spans", async () => {
  const traceId = "5b8efff798038103d269b633813fc60c";
  for (let i = 0; i < 3; i++) {
    const res = await httpRequest(`http://127.0.0.1:${sidecar.inboundPort}/reviews/${i}?page=2`, {
      headers: { traceparent: `00-${traceId}-eee19b7ec3c1b17${i}-01`, tracestate: "congo=t61rcWkgMzE" },
    });
    assert.equal(res.status, 200);
  }
  const zipkinSpans = await eventually("3 spans at the Zipkin stand-in", async () => {
    const spans = zipkin.received.flatMap((r) => JSON.parse(r.body.toString()) as ZipkinSpan[]).filter((s) => s.traceId === traceId);
    return spans.length === 3 ? spans : undefined;
  });
  const requests = await eventually("3 spans at the OTLP stand-in", async () => {
    const got = otlp.received.filter((r) => decode(r.body).resource_spans.some((rs: any) => rs.scope_spans.some((ss: any) => ss.spans.some((s: any) => s.trace_id === traceId))));
    const n = got.reduce((k, r) => k + decode(r.body).resource_spans[0].scope_spans[0].spans.length, 0);
    return n >= 3 ? got : undefined;
  });
  for (const r of requests) {
    assert.equal(r.path, "/v1/traces");
    assert.equal(r.headers["content-type"], "application/x-protobuf");
    assert.equal(r.headers[":authority"] ?? r.headers.host, "collector.example:4318");
    assert.equal(r.headers["x-scope-orgid"], "tenant-7", "configured headers sent");
  }
  const decoded = decode(requests[0].body);
  assert.equal(decoded.resource_spans.length, 1);
  const rs = decoded.resource_spans[0];
  assert.deepEqual(attributes(rs.resource.attributes), { "service.name": "reviews", "k8s.namespace.name": "bookinfo" });
  assert.equal(rs.scope_spans.length, 1);
  assert.equal(rs.scope_spans[0].scope.name, "mesh-telemetry-wasm");
  const spans = requests.flatMap((r) => decode(r.body).resource_spans[0].scope_spans[0].spans).filter((s: any) => s.trace_id === traceId);
  assert.equal(spans.length, 3);
  for (const s of spans) {
    const z = zipkinSpans.find((x) => x.id === s.span_id);
    assert.ok(z, `the OTLP span ${s.span_id} is one Zipkin got too`);
    assert.equal(s.parent_span_id, z!.parentId);
    assert.match(s.parent_span_id, /^eee19b7ec3c1b17[0-2]$/);
    assert.equal(s.kind, "SPAN_KIND_SERVER");
    assert.equal(s.name, z!.name);
    assert.match(s.trace_state, /^mtw=[^,]+,congo=t61rcWkgMzE$/);
    assert.equal(s.flags, 0x301, "sampled, parent known to be remote");
    // Zipkin has microseconds; OTLP the nanoseconds they came from (divided as integers: the
    // nanoseconds are past a double's exact range).
    assert.equal(Number(BigInt(s.start_time_unix_nano) / 1000n), z!.timestamp);
    assert.ok(BigInt(s.end_time_unix_nano) > BigInt(s.start_time_unix_nano));
    assert.equal(s.status, undefined, "a 200 leaves the status unset");
    const a = attributes(s.attributes);
    assert.equal(a["http.request.method"], "GET");
    assert.match(String(a["url.path"]), /^\/reviews\/[0-2]$/);
    assert.equal(a["url.query"], "page=2");
    assert.equal(a["url.scheme"], "http");
    assert.equal(a["server.address"], "127.0.0.1");
    assert.equal(a["server.port"], String(sidecar.inboundPort), "int_value (protojson writes int64 as a string)");
    assert.equal(a["http.response.status_code"], "200");
    assert.equal(a["network.peer.address"], "127.0.0.1");
    // Istio's tags, as Zipkin got them.
    for (const [k, v] of Object.entries(z!.tags ?? {})) assert.equal(a[k], v, `tag ${k}`);
  }
});

/** Sends `n` requests, each answered 200 by the app through the sidecar, and waits until every span is accounted for in both formats. */
async function phase(n: number): Promise<Record<string, number>> {
  const start = await counters();
  for (let i = 0; i < n; i++) {
    const res = await httpRequest(`http://127.0.0.1:${sidecar.inboundPort}/ratings/${i}`, { timeoutMs: 5000 });
    assert.equal(res.status, 200, "traffic is untouched by the collector");
  }
  return eventually(`${n} spans accounted in both formats`, async () => {
    const now = await counters();
    const d = Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - start[k]]));
    return d.otlp_spans_reported + d.otlp_spans_dropped === n && d.spans_reported + d.spans_dropped === n ? d : undefined;
  }, 20000);
}

test("a collector answering 5xx, garbage or nothing never affects traffic; its spans count as dropped, Zipkin's as reported", async () => {
  for (const behaviour of ["5xx", "garbage", "silent"] as Behaviour[]) {
    otlp.behaviour = behaviour;
    const before = otlp.received.length;
    const d = await phase(10);
    assert.ok(otlp.received.length > before, `${behaviour}: batches were sent`);
    assert.deepEqual(d, { otlp_spans_reported: 0, otlp_spans_dropped: 10, spans_reported: 10, spans_dropped: 0 }, behaviour);
  }
  otlp.behaviour = "ok";
  assert.deepEqual(await phase(10), { otlp_spans_reported: 10, otlp_spans_dropped: 0, spans_reported: 10, spans_dropped: 0 }, "recovered");
});

test("partial success: the spans the collector says it rejected count as dropped", async () => {
  otlp.behaviour = "partial";
  const before = otlp.received.length;
  const d = await phase(10);
  const batches = otlp.received.length - before;
  assert.ok(batches >= 2, "batches of at most 5");
  assert.deepEqual(d, { otlp_spans_reported: 10 - batches, otlp_spans_dropped: batches, spans_reported: 10, spans_dropped: 0 });
  otlp.behaviour = "ok";
});
