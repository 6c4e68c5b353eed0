// HTTP telemetry of one request (assembly/plugin/http.ts) on the test host: Istio's metadata
// exchange (stripped, injected, answered), peer trust, and the request counted when logged.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MapType } from "../../harness/proxywasm.ts";
import {
  CLIENT, clientRequest, clientSidecar, nodeOf, OK_RESPONSE, SERVER, serverSidecar, throughPair, TRACING_OFF,
} from "../../harness/sidecar-vms.ts";

const PEER_METADATA = "x-envoy-peer-metadata";
const PEER_METADATA_ID = "x-envoy-peer-metadata-id";
const STATS_ONLY = { reporter: "UNSPECIFIED", ...TRACING_OFF };

/** The exchange value a sidecar sends, as the plugin encodes it (taken from a real run). */
function exchangeOf(side: "client" | "server"): { value: string; id: string } {
  const client = clientSidecar({ config: STATS_ONLY });
  const server = serverSidecar({ config: STATS_ONLY });
  const c = client.http();
  c.requestHeaders(clientRequest());
  if (side === "client") return { value: c.header(PEER_METADATA)!, id: c.header(PEER_METADATA_ID)! };
  const s = server.http();
  s.requestHeaders(c.request);
  s.responseHeaders(OK_RESPONSE);
  return { value: s.header(PEER_METADATA, MapType.ResponseHeaders)!, id: s.header(PEER_METADATA_ID, MapType.ResponseHeaders)! };
}

describe("metadata exchange", () => {
  test("outbound: this proxy's identity is injected into the request", () => {
    const client = clientSidecar({ config: STATS_ONLY });
    const s = client.http();
    s.requestHeaders(clientRequest());
    assert.equal(s.header(PEER_METADATA_ID), nodeOf(CLIENT).nodeId);
    // A protobuf Struct, base64: the workload's name and labels are in it as strings.
    const struct = Buffer.from(s.header(PEER_METADATA)!, "base64").toString("latin1");
    for (const v of ["productpage-v1", "default", "Kubernetes", "productpage"]) assert.ok(struct.includes(v), `exchange carries ${v}`);
    assert.deepEqual(
      client.headerWrites.filter((w) => w.key.startsWith("x-envoy-peer")).map((w) => [w.op, w.map, w.key]),
      [["replace", MapType.RequestHeaders, PEER_METADATA], ["replace", MapType.RequestHeaders, PEER_METADATA_ID]],
    );
  });

  test("inbound: the caller's exchange is stripped from the request and answered on the response", () => {
    const { client, server } = throughPair(clientSidecar({ config: STATS_ONLY }), serverSidecar({ config: STATS_ONLY }));
    assert.equal(server.header(PEER_METADATA), undefined, "not passed to the application");
    assert.equal(server.header(PEER_METADATA_ID), undefined);
    assert.equal(server.header(PEER_METADATA_ID, MapType.ResponseHeaders), nodeOf(SERVER).nodeId, "answered");
    assert.ok(server.header(PEER_METADATA, MapType.ResponseHeaders)!.length > 100);
    // The client takes the answer off the response before the application sees it.
    assert.equal(client.header(PEER_METADATA, MapType.ResponseHeaders), undefined);
    assert.equal(client.header(PEER_METADATA_ID, MapType.ResponseHeaders), undefined);
  });

  test("both reporters label the peer from the exchange", () => {
    const client = clientSidecar({ config: STATS_ONLY });
    const server = serverSidecar({ config: STATS_ONLY });
    throughPair(client, server);
    const expected = {
      source_workload: "productpage-v1", source_app: "productpage", source_version: "v1", source_cluster: "Kubernetes",
      destination_workload: "reviews-v1", destination_app: "reviews", destination_version: "v1", destination_cluster: "Kubernetes",
    };
    assert.equal(client.metricValue("istio_requests_total", { reporter: "source", ...expected }), 1n);
    assert.equal(server.metricValue("istio_requests_total", { reporter: "destination", ...expected }), 1n);
  });

  test("inbound does not answer a caller that sent no exchange", () => {
    const server = serverSidecar({ config: STATS_ONLY });
    const s = server.request({ headers: clientRequest(), response: OK_RESPONSE });
    assert.equal(s.header(PEER_METADATA, MapType.ResponseHeaders), undefined);
    assert.equal(server.metricValue("istio_requests_total", { source_workload: "unknown", destination_workload: "reviews-v1" }), 1n);
  });

  test("outbound sends no identity to a passthrough (external) cluster and believes no answer from it", () => {
    const client = clientSidecar({ config: STATS_ONLY, properties: { xds: { cluster_name: "PassthroughCluster", route_name: "allow_any", listener_direction: 2 } } });
    const s = client.http();
    s.requestHeaders(clientRequest());
    assert.equal(s.header(PEER_METADATA), undefined);
    const answer = exchangeOf("server");
    s.responseHeaders([...OK_RESPONSE, [PEER_METADATA, answer.value], [PEER_METADATA_ID, answer.id]]);
    s.log();
    assert.equal(s.header(PEER_METADATA, MapType.ResponseHeaders), undefined, "stripped all the same");
    assert.equal(client.metricValue("istio_requests_total", { destination_workload: "unknown", destination_service_name: "PassthroughCluster" }), 1n);
  });
});

describe("peer trust (peer_metadata_trust)", () => {
  const callerHeaders = () => {
    const x = exchangeOf("client");
    return [...clientRequest(), [PEER_METADATA, x.value], [PEER_METADATA_ID, x.id]] as Array<[string, string]>;
  };

  test("never: the caller's claim is stripped, not believed, not answered, and counted", () => {
    const server = serverSidecar({ config: { ...STATS_ONLY, peer_metadata_trust: "never" } });
    const s = server.request({ headers: callerHeaders(), response: OK_RESPONSE });
    assert.equal(s.header(PEER_METADATA), undefined);
    assert.equal(s.header(PEER_METADATA, MapType.ResponseHeaders), undefined);
    assert.equal(server.metricValue("istio_requests_total", { source_workload: "unknown" }), 1n);
    assert.equal(server.metricValue("mesh_telemetry_peer_metadata_untrusted_total"), 1n);
  });

  test("mtls_only: believed on a mutual-TLS connection (connection.mtls, a 1-byte bool), not on plain text", () => {
    const server = serverSidecar({ config: { ...STATS_ONLY, peer_metadata_trust: "mtls_only" } });
    server.request({ headers: callerHeaders(), properties: { connection: { id: 1n, mtls: false } } });
    server.request({
      headers: callerHeaders(),
      properties: { connection: { id: 2n, mtls: true, uri_san_peer_certificate: "spiffe://cluster.local/ns/default/sa/productpage", uri_san_local_certificate: "spiffe://cluster.local/ns/default/sa/reviews" } },
    });
    assert.equal(server.metricValue("istio_requests_total", { source_workload: "unknown", connection_security_policy: "none" }), 1n);
    assert.equal(
      server.metricValue("istio_requests_total", {
        source_workload: "productpage-v1", connection_security_policy: "mutual_tls",
        source_principal: "spiffe://cluster.local/ns/default/sa/productpage", destination_principal: "spiffe://cluster.local/ns/default/sa/reviews",
      }),
      1n,
    );
    assert.equal(server.metricValue("mesh_telemetry_peer_metadata_untrusted_total"), 1n);
  });

  test("a malformed claim never fails the request: labels unknown, counted as invalid", () => {
    const server = serverSidecar({ config: STATS_ONLY });
    const s = server.request({ headers: [...clientRequest(), [PEER_METADATA, "%%%not base64"], [PEER_METADATA_ID, "x"]], response: OK_RESPONSE });
    assert.equal(s.header(PEER_METADATA), undefined);
    assert.equal(server.metricValue("istio_requests_total", { source_workload: "unknown" }), 1n);
    assert.equal(server.metricValue("mesh_telemetry_peer_metadata_invalid_total"), 1n);
  });
});

describe("request metrics", () => {
  test("a request is counted when it is logged, not before; sizes and duration recorded", () => {
    const client = clientSidecar({ config: STATS_ONLY });
    const s = client.http();
    s.requestHeaders(clientRequest());
    s.responseHeaders(OK_RESPONSE);
    assert.equal(client.metricsNamed("istio_requests_total").length, 0, "nothing defined before the log");
    s.log();
    assert.equal(client.metricValue("istio_requests_total", { response_code: "200", request_protocol: "http" }), 1n);
    const [duration] = client.metricsNamed("istio_request_duration_milliseconds");
    assert.deepEqual(duration.samples, [1n], "request.duration 1.25 ms, in whole milliseconds");
    assert.deepEqual(client.metricsNamed("istio_request_bytes")[0].samples, [180n]);
    assert.deepEqual(client.metricsNamed("istio_response_bytes")[0].samples, [1150n]);
    assert.equal(duration.type, "histogram");
  });

  test("response code from :status, flags from response.flags (8-byte integer)", () => {
    const client = clientSidecar({ config: STATS_ONLY });
    const s = client.http({ response: { flags: 0b110n, total_size: 0n } }); // bits 1 and 2: UH, UT
    s.requestHeaders(clientRequest());
    s.responseHeaders([[":status", "503"]]);
    s.log();
    assert.equal(client.metricValue("istio_requests_total", { response_code: "503", response_flags: "UH,UT" }), 1n);
  });

  test("a request answered before the filter saw its headers is still counted at log", () => {
    const server = serverSidecar({ config: STATS_ONLY });
    const s = server.http({ response: { code: 403n } }).withRequestHeaders(clientRequest());
    s.log();
    s.delete();
    assert.equal(server.metricValue("istio_requests_total", { response_code: "403", reporter: "destination" }), 1n);
    assert.equal(server.headerWrites.length, 0, "nothing written to a request it did not filter");
  });

  test("gRPC: protocol and grpc_response_status", () => {
    const server = serverSidecar({ config: STATS_ONLY });
    server.request({
      headers: [...clientRequest(), ["content-type", "application/grpc"]],
      response: [[":status", "200"]],
      properties: { response: { grpc_status: 5n, code: 200n, flags: 0n, total_size: 10n } },
    });
    assert.equal(server.metricValue("istio_requests_total", { request_protocol: "grpc", grpc_response_status: "5" }), 1n);
  });
});
