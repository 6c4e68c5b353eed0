// The demo mesh as a test (the slowest file, about a minute). Brings up the
// bookinfo-shaped mesh (tools/mesh/) under its own prefix and subnet (mtt, 10.77.1.0/24, so it
// never collides with a running `make demo`), drives bounded traffic through the ingress
// gateway, and checks what the plugin reported through real Prometheus: every edge from both
// reporters with the right workload labels, the faulty service's error rate, that the traffic
// really went through iptables interception, that the apps' trace headers reach every hop;
// mutual TLS with SPIFFE principals on every hop, the TCP service's exact byte counts from both
// sidecars, every query of Istio's dashboards answering, and that a plaintext caller forging
// peer metadata is not believed; then tears everything down in `after` and checks nothing is left. It needs root and podman (make
// test installs podman); MESH_MODE=loopback runs the process fallback instead, without the
// interception checks.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { eventually, httpRequest, ROOT, sleep } from "../harness/envoy.ts";
import {
  writeServiceGraph, startMesh, type Mesh, type TrafficRun, podRules, edgeStats, promQuery, traceDuration,
  expectedEdges, REDIS_GET_STARS, REDIS_NIL, dashboardCoverage, DEMO_NO_DATA_BY_DESIGN,
} from "../harness/tools.ts";
import { spiffeId } from "../harness/ca.ts";
import { peerMetadataBase64 } from "../fixtures/hostile.ts";
import type { ZipkinSpan } from "../harness/zipkin.ts";

const LOOPBACK = process.env.MESH_MODE === "loopback";
const PREFIX = "mtt";
const OUT = join(ROOT, "build/mesh-test");
const FAIL_RATE = 0.2;
const RPS = 20;
const SECONDS = 12;
const WARMUP = 8;

let mesh: Mesh | undefined;
let traffic: TrafficRun;

before(async () => {
  mesh = await startMesh({
    prefix: PREFIX, subnet: 1, outDir: OUT, ratingsFailRate: FAIL_RATE, scrapeInterval: "1s",
    mode: LOOPBACK ? "loopback" : "auto",
    step: (t) => console.log(`# mesh: ${t}`),
  });
  await mesh.warmup(WARMUP);
  traffic = await mesh.drive({ rps: RPS, seconds: SECONDS });
  await mesh.prometheus!.waitForScrapes(2);
});

after(async () => {
  if (!mesh) return;
  const left = await mesh.down();
  assert.deepEqual(left, [], "the mesh left something behind");
});

const prom = (q: string) => promQuery(mesh!.prometheus!.url, q);

function workloadLabels(name: string): { workload: string; namespace: string; app: string; version: string } {
  const pod = mesh!.topology.pods.find((p) => p.workload.workload === name)!;
  // No version label (the gateway): the plugin, like Istio, reports "unknown".
  return { workload: name, namespace: pod.workload.namespace, app: pod.workload.app, version: pod.workload.version || "unknown" };
}

test("every edge is reported by both sidecars, with the source and destination workloads' labels and equal counts", async () => {
  // connection_security_policy="none": the plaintext caller from outside the mesh (no sidecar, no
  // identity). The loopback fallback has no such caller, and every hop there is plaintext.
  const notOutside = LOOPBACK ? "" : `{connection_security_policy!="none"}`;
  const rows = await prom(
    `sum by (reporter, source_workload, source_workload_namespace, source_app, source_version, destination_workload, destination_workload_namespace, destination_app, destination_version, destination_service_name) (istio_requests_total${notOutside})`,
  );
  const expected = expectedEdges(mesh!.topology);
  assert.equal(expected.length, 4);
  const seen = rows.map((r) => `${r.metric.reporter}: ${r.metric.source_workload} -> ${r.metric.destination_workload}`).sort();
  const want = expected.flatMap((e) => ["source", "destination"].map((rep) => `${rep}: ${e.source} -> ${e.destination}`)).sort();
  assert.deepEqual(seen, want, "exactly the topology's edges, each from both reporters (no unknown peers)");

  for (const e of expected) {
    const src = workloadLabels(e.source);
    const dst = workloadLabels(e.destination);
    const service = mesh!.topology.pods.find((p) => p.workload.workload === e.destination)!.service;
    const counts: Record<string, number> = {};
    for (const reporter of ["source", "destination"]) {
      const r = rows.find((x) => x.metric.reporter === reporter && x.metric.source_workload === e.source && x.metric.destination_workload === e.destination)!;
      assert.deepEqual(r.metric, {
        reporter,
        source_workload: src.workload, source_workload_namespace: src.namespace, source_app: src.app, source_version: src.version,
        destination_workload: dst.workload, destination_workload_namespace: dst.namespace, destination_app: dst.app, destination_version: dst.version,
        destination_service_name: service,
      }, `${reporter} reporter for ${e.source} -> ${e.destination}`);
      counts[reporter] = r.value;
    }
    assert.equal(counts.source, counts.destination, `${e.source} -> ${e.destination}: both sidecars counted every request`);
  }
  const [gateway] = await prom(`sum(istio_requests_total{reporter="source",source_workload="istio-ingressgateway"})`);
  assert.equal(gateway.value, WARMUP + traffic.sent, "the gateway counted every request the load generator sent");
  assert.deepEqual(traffic.byStatus, { 200: traffic.sent }, "reviews-v2 degrades gracefully: clients see no errors");
});

test("the faulty service's error rate is what it was told to fail; every other edge is clean", async () => {
  for (const reporter of ["source", "destination"]) {
    const [errors] = await prom(`sum(istio_requests_total{reporter="${reporter}",destination_workload="ratings-v1",response_code="500"})`);
    const [all] = await prom(`sum(istio_requests_total{reporter="${reporter}",destination_workload="ratings-v1"})`);
    // ratings fails exactly floor(n * rate) of its first n requests.
    assert.equal(errors.value, Math.floor(all.value * FAIL_RATE), `${reporter}: ${errors.value} of ${all.value} failed`);
  }
  const edges = await edgeStats(mesh!.prometheus!.url, (traffic.endedAt - traffic.startedAt) / 1000, traffic.endedAt / 1000);
  const ratings = edges.find((e) => e.destination === "ratings-v1")!;
  assert.ok(Math.abs(ratings.errorRate - FAIL_RATE) < 0.05, `PromQL error rate of reviews-v2 -> ratings-v1: ${ratings.errorRate}`);
  for (const e of edges.filter((x) => x.destination !== "ratings-v1")) assert.equal(e.errorRate, 0, `${e.source} -> ${e.destination}`);
  const gateway = edges.find((e) => e.source === "istio-ingressgateway")!;
  assert.ok(Math.abs(gateway.rps - RPS) / RPS < 0.2, `PromQL request rate at the gateway ${gateway.rps}, sent ${RPS}/s`);
  assert.ok(ratings.p99 > ratings.p50, `latency percentiles ${ratings.p50} < ${ratings.p99}`);

  const graph = await writeServiceGraph(edges, OUT, { title: "mesh test", subtitle: "" });
  const svg = readFileSync(graph.svg, "utf8");
  assert.equal((svg.match(/marker-end=/g) ?? []).length, LOOPBACK ? 4 : 5, "one arrow per edge, the TCP one included");
  if (!LOOPBACK) assert.equal((svg.match(/marker-end="url\(#arrow-tcp\)"/g) ?? []).length, 1, "ratings -> redis drawn as a TCP edge");
  assert.equal((svg.match(/marker-end="url\(#arrow-err\)"/g) ?? []).length, 1, "only the ratings edge is red");
});

test("traffic went through iptables interception into the sidecars, both directions", async (t) => {
  if (LOOPBACK) return t.skip("MESH_MODE=loopback: no interception to check");
  assert.equal(mesh!.mode, "containers", `containers unavailable: ${mesh!.modeReason}`);
  const counter = (rules: string, re: RegExp) => Number(new RegExp(`^\\[(\\d+):\\d+\\] ${re.source}`, "m").exec(rules)?.[1] ?? -1);
  for (const p of mesh!.pods) {
    const rules = await podRules(p.netns!);
    if (p.def.kind === "gateway") {
      assert.ok(!rules.includes("ISTIO"), "gateways are not intercepted");
      continue;
    }
    assert.ok(counter(rules, /-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006/) > 0, `${p.def.key}: inbound connections redirected to 15006`);
    const calls = (p.def.app?.calls.length ?? 0) + (p.def.app?.tcpCalls?.length ?? 0) > 0;
    const out = counter(rules, /-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001/);
    assert.ok(calls ? out > 0 : out === 0, `${p.def.key}: ${out} outbound connections redirected to 15001`);
  }
  // 0.0.0.0_9080 is not bound to its port: connections reach it only by virtualOutbound's hand-off.
  const cx = await prom(`sum by (pod, envoy_listener_address) (envoy_listener_downstream_cx_total{envoy_listener_address=~"0.0.0.0_(9080|15006)"})`);
  const value = (pod: string, listener: string) => cx.find((r) => r.metric.pod === pod && r.metric.envoy_listener_address === listener)?.value ?? 0;
  for (const pod of ["productpage-v1", "reviews-v2"]) assert.ok(value(pod, "0.0.0.0_9080") > 0, `${pod} outbound through 15001`);
  for (const pod of ["productpage-v1", "reviews-v1", "reviews-v2", "ratings-v1"]) assert.ok(value(pod, "0.0.0.0_15006") > 0, `${pod} inbound through 15006`);
});

test("the apps forward trace headers: the same trace id and request id reach every hop", async () => {
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const headers = {
    traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
    "x-b3-traceid": traceId,
    "x-b3-spanid": "00f067aa0ba902b7",
    "x-b3-sampled": "1",
  };
  // Round robin between reviews-v1 and v2, and ratings' failures: ask until a request has gone
  // gateway -> productpage -> reviews-v2 -> ratings and back with ratings' answer.
  const body = await eventually("a request answered through reviews-v2 and ratings", async () => {
    const res = await httpRequest(`${mesh!.gatewayUrl}/productpage/7`, { headers });
    const b = JSON.parse(res.body);
    return b.reviews?.ratingsTrace ? b : undefined;
  });
  const hops = { productpage: body.trace, reviews: body.reviews.trace, ratings: body.reviews.ratingsTrace };
  const requestId = hops.productpage["x-request-id"];
  assert.match(requestId, /^[0-9a-f-]{36}$/, "the gateway started an x-request-id");
  for (const [hop, seen] of Object.entries(hops)) {
    assert.equal(seen.traceparent?.split("-")[1], traceId, `${hop}: traceparent trace id`);
    assert.equal(seen["x-b3-traceid"], traceId, `${hop}: x-b3-traceid`);
    assert.equal(seen["x-request-id"], requestId, `${hop}: x-request-id`);
  }
});

test("one connected trace in Zipkin across gateway, productpage, reviews and ratings", async () => {
  assert.ok(mesh!.plugin?.tracing, "the mesh's plugins report spans");
  assert.ok(mesh!.zipkin, `Zipkin not running: ${mesh!.zipkinError}`);
  const services = ["istio-ingressgateway", "productpage", "reviews", "ratings"];
  // Each proxy flushes its spans on its own timer, so a trace is complete once every span's
  // parent has arrived: one root, every hop present.
  const rootsOf = (spans: ZipkinSpan[]) => {
    const ids = new Set(spans.map((x) => x.id));
    return spans.filter((x) => !x.parentId || !ids.has(x.parentId));
  };
  const trace = await eventually("a complete trace spanning every hop", async () => {
    const traces = await mesh!.zipkin!.traces({ limit: 200 });
    return traces.find((spans) => services.every((s) => spans.some((x) => x.localEndpoint?.serviceName?.startsWith(s))) && rootsOf(spans).length === 1);
  }, 30_000);
  const [root] = rootsOf(trace);
  assert.equal(root.kind, "CLIENT");
  assert.ok(root.localEndpoint?.serviceName?.startsWith("istio-ingressgateway"), "the trace starts at the gateway");
  // One client and one server span per sidecar-to-sidecar hop.
  assert.equal(trace.filter((x) => x.kind === "SERVER").length, trace.filter((x) => x.kind === "CLIENT").length);
  assert.ok(traceDuration(trace) > 0);
});

function principalOf(workload: string): string {
  const pod = mesh!.topology.pods.find((p) => p.workload.workload === workload)!;
  return spiffeId(pod.workload.namespace, pod.serviceAccount);
}

test("every sidecar-to-sidecar hop is mutual TLS: destination reporters say mutual_tls, both reporters name both SPIFFE principals", async (t) => {
  if (LOOPBACK) return t.skip("MESH_MODE=loopback: the process fallback runs plaintext");
  const rows = await prom(
    "sum by (reporter, source_workload, destination_workload, source_principal, destination_principal, connection_security_policy) (istio_requests_total)",
  );
  for (const e of expectedEdges(mesh!.topology)) {
    for (const reporter of ["source", "destination"]) {
      const series = rows.filter((r) => r.metric.reporter === reporter && r.metric.source_workload === e.source && r.metric.destination_workload === e.destination);
      assert.deepEqual(series.map((r) => r.metric), [{
        reporter,
        source_workload: e.source,
        destination_workload: e.destination,
        source_principal: principalOf(e.source),
        destination_principal: principalOf(e.destination),
        // Istio: the policy is known on the server side only; the client reports unknown.
        connection_security_policy: reporter === "destination" ? "mutual_tls" : "unknown",
      }], `${reporter}: ${e.source} -> ${e.destination}`);
    }
  }
});

test("a TCP service over mutual TLS: ratings -> redis reported by both sidecars with exact byte counts", async (t) => {
  if (LOOPBACK) return t.skip("MESH_MODE=loopback: the process fallback has no TCP service");
  // Every ratings request opened one connection, wrote one GET and read one nil reply. The
  // sidecars report at close and are scraped each second: compare once all three agree.
  const metric = { opened: "istio_tcp_connections_opened_total", closed: "istio_tcp_connections_closed_total", received: "istio_tcp_received_bytes_total", sent: "istio_tcp_sent_bytes_total" };
  // Server side: only the mTLS connections, i.e. not the plaintext caller from outside the mesh.
  const totals = async (reporter: string) => {
    const out: Record<string, number> = {};
    const policy = reporter === "destination" ? `,connection_security_policy="mutual_tls"` : "";
    for (const [k, name] of Object.entries(metric)) out[k] = (await prom(`sum(${name}{reporter="${reporter}",destination_workload="redis-v1"${policy}})`))[0]?.value ?? 0;
    return out;
  };
  let n = 0;
  let want: Record<string, number> = {};
  let got: Record<string, Record<string, number>> = {};
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(500)) {
    n = (await prom(`sum(istio_requests_total{reporter="destination",destination_workload="ratings-v1"})`))[0]?.value ?? 0;
    want = { opened: n, closed: n, received: n * Buffer.byteLength(REDIS_GET_STARS), sent: n * Buffer.byteLength(REDIS_NIL) };
    got = { source: await totals("source"), destination: await totals("destination") };
    if (JSON.stringify(got.source) === JSON.stringify(want) && JSON.stringify(got.destination) === JSON.stringify(want)) break;
  }
  assert.ok(n > 0, "ratings served requests");
  for (const reporter of ["source", "destination"]) assert.deepEqual(got[reporter], want, `${reporter}: exact connection and byte counts for ${n} ratings requests`);
  const rows = await prom(`sum by (reporter, source_workload, source_principal, destination_workload, destination_principal, destination_service_name, connection_security_policy, request_protocol) (istio_tcp_connections_opened_total)`);
  const dest = rows.find((r) => r.metric.reporter === "destination" && r.metric.connection_security_policy === "mutual_tls")!;
  assert.equal(dest.metric.connection_security_policy, "mutual_tls");
  assert.equal(dest.metric.source_principal, principalOf("ratings-v1"), "the client's SPIFFE id from its certificate");
  assert.equal(dest.metric.destination_principal, principalOf("redis-v1"));
  assert.equal(dest.metric.destination_workload, "redis-v1");
  const src = rows.find((r) => r.metric.reporter === "source")!;
  assert.deepEqual(src.metric, {
    reporter: "source", source_workload: "ratings-v1", source_principal: principalOf("ratings-v1"),
    destination_workload: "redis-v1", destination_principal: principalOf("redis-v1"), destination_service_name: "redis",
    connection_security_policy: "unknown", request_protocol: "tcp",
  });
  // Every HTTP chain carries the network filter too, as istiod puts it (docs/tcp.md): yet no
  // HTTP connection is counted as TCP, only the TCP service's.
  assert.deepEqual([...new Set(rows.map((r) => r.metric.destination_workload))], ["redis-v1"], "istio_tcp_* for the TCP service only");
  assert.equal(rows.filter((r) => r.metric.reporter === "source").length, 1, "one client-side TCP series: ratings");
  // The plaintext caller from outside the mesh: counted by redis's sidecar, without mTLS or identity.
  const plain = rows.find((r) => r.metric.reporter === "destination" && r.metric.connection_security_policy === "none");
  assert.equal(plain?.metric.source_principal, "unknown");
  assert.equal(plain?.value, traffic.outside!.tcp, "every plaintext connection of the outside caller");
});

test("Istio's Mesh and Service dashboards: every query answers with data over the mesh (mTLS and TCP panels included), but the documented exceptions", async (t) => {
  if (LOOPBACK) return t.skip("MESH_MODE=loopback: no mTLS and no TCP service in the process fallback");
  const coverage = await dashboardCoverage({ prometheusUrl: mesh!.prometheus!.url, topology: mesh!.topology, start: traffic.startedAt / 1000, end: traffic.endedAt / 1000 + 2 });
  assert.ok(coverage.length > 80, `${coverage.length} queries`);
  assert.deepEqual(coverage.filter((c) => c.error).map((c) => `${c.key}: ${c.error}`), [], "every query runs");
  const empty = coverage.filter((c) => c.answered.length === 0).map((c) => c.key).sort();
  assert.deepEqual(empty, Object.keys(DEMO_NO_DATA_BY_DESIGN).sort(), "queries without data anywhere in the mesh are exactly the documented ones");
  // The panels the issue is about: mTLS-filtered and TCP ones answer, and for the right services.
  const answeredFor = (re: RegExp) => coverage.filter((c) => re.test(c.key)).flatMap((c) => c.answered);
  assert.ok(answeredFor(/Incoming Requests By Source And Response Code/).some((c) => c.includes("productpage") && c.includes("qrep=destination")));
  assert.ok(answeredFor(/TCP/).some((c) => c.startsWith("service=redis.bookinfo.svc.cluster.local")), "TCP panels answer for the TCP service");
});

test("trust: a plaintext caller forging x-envoy-peer-metadata gets no identity believed (peer_metadata_trust: mtls_only)", async (t) => {
  if (LOOPBACK) return t.skip("MESH_MODE=loopback: no PERMISSIVE inbound chains");
  const productpage = mesh!.pod("productpage-v1");
  const forged = peerMetadataBase64("payments-v1", "prod", "payments");
  const before = await prom(`sum(mesh_telemetry_peer_metadata_untrusted_total{pod="productpage-v1"})`);
  const sent = 3;
  assert.ok(traffic.outside && traffic.outside.http > 0 && traffic.outside.httpOk === traffic.outside.http, `the outside caller's plain requests: ${JSON.stringify(traffic.outside)}`);
  // From the host straight to the pod: iptables hands it to the sidecar's plaintext chain.
  for (let i = 0; i < sent; i++) {
    const res = await httpRequest(`http://${productpage.ip}:9080/productpage/${i}`, {
      headers: { "x-envoy-peer-metadata": forged, "x-envoy-peer-metadata-id": "sidecar~10.0.0.9~payments-v1-abc.prod~prod.svc.cluster.local" },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers["x-envoy-peer-metadata"], undefined, "no identity revealed to a plaintext caller");
  }
  await mesh!.prometheus!.waitForScrapes(2);
  assert.deepEqual(await prom(`istio_requests_total{source_workload="payments-v1"}`), [], "the forged workload appears nowhere");
  const [plain] = await prom(`sum(istio_requests_total{reporter="destination",destination_workload="productpage-v1",connection_security_policy="none",source_workload="unknown",source_principal="unknown"})`);
  // Besides the outside caller's plain requests during the run (no metadata, same labels).
  assert.equal(plain?.value, traffic.outside!.http + sent, "the forged requests counted as from an unknown source, without mTLS");
  const [after] = await prom(`sum(mesh_telemetry_peer_metadata_untrusted_total{pod="productpage-v1"})`);
  assert.equal(after.value - (before[0]?.value ?? 0), sent, "each forged claim counted as untrusted");
});
