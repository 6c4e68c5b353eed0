// The reporting service (assembly/plugin/telemetry.ts): the labels HTTP and TCP share, the
// reporter from the listener's direction, destination_service* from istiod's cluster metadata
// or the Host header, the downstream connection's TLS facts from the log's attributes, and
// peers decoded once per exchange id.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Direction, ProxyWasmVm } from "../../harness/proxywasm.ts";
import { probedModule } from "../../harness/probes.ts";
import { clientRequest, clientSidecar, nodeOf, OK_RESPONSE, requestAttributes, SERVER, serverSidecar, throughPair, TRACING_OFF } from "../../harness/sidecar-vms.ts";

const STATS_ONLY = { reporter: "UNSPECIFIED", ...TRACING_OFF };

/** A sidecar with the default root id (""), so only the listener's direction decides. */
function onListener(direction: number | undefined, config: object = STATS_ONLY): ProxyWasmVm {
  const p = requestAttributes("outbound|9080||reviews.default.svc.cluster.local", null);
  if (direction !== undefined) (p.xds as any).listener_direction = direction;
  return new ProxyWasmVm({ ...nodeOf(SERVER), rootId: "", config, properties: p });
}

describe("reporter", () => {
  test("from xds.listener_direction: OUTBOUND reports as source, INBOUND and unset as destination", () => {
    for (const [direction, reporter] of [[Direction.Outbound, "source"], [Direction.Inbound, "destination"], [undefined, "destination"]] as const) {
      const vm = onListener(direction);
      vm.request({ headers: clientRequest() });
      assert.equal(vm.metricsNamed("istio_requests_total")[0]?.labels.reporter, reporter, `direction ${direction}`);
      assert.equal(vm.calls.count({ fn: "get_property", key: "xds.listener_direction" }), 1, "read once per request");
    }
  });

  test("a configured reporter wins over the direction and saves the read", () => {
    const vm = onListener(Direction.Outbound, { ...STATS_ONLY, reporter: "destination" });
    vm.request({ headers: clientRequest() });
    assert.equal(vm.metricsNamed("istio_requests_total")[0].labels.reporter, "destination");
    assert.equal(vm.calls.count({ key: "xds.listener_direction" }), 0);
  });

  test("Istio's root ids fix it: stats_outbound is source even on an inbound listener", () => {
    const vm = new ProxyWasmVm({ ...nodeOf(SERVER), rootId: "stats_outbound", config: STATS_ONLY, properties: { xds: { listener_direction: Direction.Inbound } } });
    vm.request({ headers: clientRequest() });
    assert.equal(vm.metricsNamed("istio_requests_total")[0].labels.reporter, "source");
  });
});

describe("destination_service", () => {
  test("outbound: from istiod's cluster metadata (services[0])", () => {
    const client = clientSidecar({ config: STATS_ONLY });
    client.request({ headers: clientRequest() });
    assert.equal(
      client.metricValue("istio_requests_total", { destination_service: "reviews.default.svc.cluster.local", destination_service_name: "reviews", destination_service_namespace: "default" }),
      1n,
    );
  });

  test("outbound without cluster metadata: the Host header, unless disable_host_header_fallback", () => {
    const bare = { xds: { cluster_name: "outbound|80||example", route_name: "r", listener_direction: Direction.Outbound } };
    const fallback = clientSidecar({ config: STATS_ONLY, properties: bare });
    fallback.request({ headers: clientRequest() });
    assert.equal(fallback.metricValue("istio_requests_total", { destination_service: "reviews:9080", destination_service_name: "reviews:9080" }), 1n);
    const none = clientSidecar({ config: { ...STATS_ONLY, disable_host_header_fallback: true }, properties: bare });
    none.request({ headers: clientRequest() });
    assert.equal(none.metricValue("istio_requests_total", { destination_service: "unknown" }), 1n);
  });

  test("istiod's cluster metadata is read once per cluster, not per request", () => {
    const client = clientSidecar({ config: STATS_ONLY });
    for (let i = 0; i < 5; i++) client.request({ headers: clientRequest() });
    assert.equal(client.calls.count({ key: "xds.cluster_metadata.filter_metadata.istio.services.0.name" }), 1);
  });

  test("inbound: the local canonical service and namespace", () => {
    const server = serverSidecar({ config: { ...STATS_ONLY, disable_host_header_fallback: true } });
    server.request({ headers: clientRequest(), response: OK_RESPONSE });
    assert.equal(server.metricValue("istio_requests_total", { destination_service: "reviews", destination_service_namespace: "default" }), 1n);
  });
});

describe("downstream connection", () => {
  test("mTLS and both principals are read once per connection; each request's log makes one expr_evaluate", () => {
    const server = serverSidecar({ config: STATS_ONLY });
    const tls = { id: 42n, mtls: true, uri_san_peer_certificate: "spiffe://cluster.local/ns/shop/sa/productpage", uri_san_local_certificate: "spiffe://cluster.local/ns/default/sa/reviews" };
    for (let i = 0; i < 3; i++) server.request({ headers: clientRequest(), properties: { connection: tls } });
    assert.equal(server.calls.calls.filter((c) => c.fn === "get_property" && c.key!.startsWith("connection.")).length, 3, "mtls and both SANs, once");
    assert.equal(server.calls.count({ callback: "on_log", key: "expr_evaluate" }), 3);
    // No exchange: the caller's namespace comes from its SPIFFE id.
    assert.equal(
      server.metricValue("istio_requests_total", {
        connection_security_policy: "mutual_tls", source_workload_namespace: "shop",
        source_principal: tls.uri_san_peer_certificate, destination_principal: tls.uri_san_local_certificate,
      }),
      3n,
    );
  });

  test("an Envoy without CEL foreign functions: the same labels from attributes read one by one", () => {
    const server = serverSidecar({ config: STATS_ONLY, cel: false });
    const tls = { id: 43n, mtls: true, uri_san_peer_certificate: "spiffe://cluster.local/ns/shop/sa/productpage", uri_san_local_certificate: "spiffe://cluster.local/ns/default/sa/reviews" };
    server.request({ headers: clientRequest(), properties: { connection: tls } });
    assert.equal(server.calls.count({ key: "connection.mtls" }), 1);
    assert.equal(server.metricValue("istio_requests_total", { connection_security_policy: "mutual_tls", source_workload_namespace: "shop", response_code: "200" }), 1n);
  });
});

describe("peer cache", () => {
  const DECODE = "assembly/peer/struct/decodeStruct";

  test("a peer's exchange header is decoded once per peer id, then served from the cache", () => {
    const { module, probes } = probedModule([DECODE]);
    const client = clientSidecar({ module, probes, config: STATS_ONLY });
    const server = serverSidecar({ module, probes, config: STATS_ONLY });
    for (let i = 0; i < 10; i++) throughPair(client, server);
    assert.equal(server.probeCounts.get(DECODE), 1, "the caller's metadata, decoded once");
    assert.equal(client.probeCounts.get(DECODE), 1, "the server's answer, decoded once");
    assert.equal(server.metricValue("istio_requests_total", { source_workload: "productpage-v1" }), 10n);
  });

  test("a different claim under a cached id is decoded again, not answered from the cache", () => {
    const { module, probes } = probedModule([DECODE]);
    const server = serverSidecar({ module, probes, config: STATS_ONLY });
    const exchange = (workload: string) => {
      const c = clientSidecar({ config: STATS_ONLY, workload: { workload, namespace: "default", app: workload, version: "v1" } }).http();
      c.requestHeaders(clientRequest());
      return [c.header("x-envoy-peer-metadata")!, c.header("x-envoy-peer-metadata-id")!];
    };
    const [real, id] = exchange("productpage-v1");
    const [forged] = exchange("intruder-v1");
    server.request({ headers: [...clientRequest(), ["x-envoy-peer-metadata", real], ["x-envoy-peer-metadata-id", id]] });
    server.request({ headers: [...clientRequest(), ["x-envoy-peer-metadata", forged], ["x-envoy-peer-metadata-id", id]] });
    server.request({ headers: [...clientRequest(), ["x-envoy-peer-metadata", real], ["x-envoy-peer-metadata-id", id]] });
    assert.equal(server.metricValue("istio_requests_total", { source_workload: "productpage-v1" }), 2n);
    assert.equal(server.metricValue("istio_requests_total", { source_workload: "intruder-v1" }), 1n);
    assert.equal(server.probeCounts.get(DECODE), 3);
  });
});
