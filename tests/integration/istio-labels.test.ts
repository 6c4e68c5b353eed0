// Two real Envoys as Istio sidecars: productpage's (client, outbound) calls reviews' (server,
// inbound), which forwards to the app. Both report the full label set, learned through the
// metadata exchange, and the exchange headers never reach the application or the client.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { httpRequest, startUpstream, type Upstream } from "../harness/envoy.ts";
import { startSidecar, type Sidecar, type Workload } from "../harness/sidecars.ts";
import { parsePrometheus, select, type Sample } from "../harness/prometheus.ts";

const productpage: Workload = { workload: "productpage-v1", namespace: "default", app: "productpage", version: "v1" };
const reviews: Workload = { workload: "reviews-v2", namespace: "bookinfo", app: "reviews", version: "v2", cluster: "east" };
const reviewsService = { name: "reviews", namespace: "bookinfo" };

let app: Upstream;
let grpcApp: http2.Http2Server;
let grpcPort: number;
let server: Sidecar;
let client: Sidecar;

before(async () => {
  app = await startUpstream();
  grpcApp = http2.createServer();
  grpcApp.on("stream", (stream, headers) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": String(headers["x-grpc-status"] ?? "0") }));
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
  });
  await new Promise<void>((ok) => grpcApp.listen(0, "127.0.0.1", ok));
  grpcPort = (grpcApp.address() as { port: number }).port;

  server = await startSidecar({ workload: reviews, appPort: app.port });
  client = await startSidecar({
    workload: productpage,
    outbound: [
      { service: reviewsService, endpoints: [{ port: server.inboundPort }] },
      // no sidecar behind this one: identity from the endpoint's istio.workload label only
      { service: { name: "ratings", namespace: "bookinfo" }, endpoints: [{ port: app.port, workload: { workload: "ratings-v1", namespace: "bookinfo", app: "ratings", version: "v1" } }] },
      // gRPC straight to an h2 app
      { service: { name: "grpc", namespace: "bookinfo" }, endpoints: [{ port: grpcPort }], protocol: "grpc" },
      // no endpoint at all: Envoy answers 503 with response flag UH
      { service: { name: "nowhere", namespace: "bookinfo" }, endpoints: [{ port: 9 }] },
    ],
  });
});

after(async () => {
  await client?.envoy.stop();
  await server?.envoy.stop();
  await app?.close();
  await new Promise<void>((ok) => (grpcApp ? grpcApp.close(() => ok()) : ok()));
});

async function metrics(sidecar: Sidecar): Promise<Sample[]> {
  return parsePrometheus(await sidecar.envoy.prometheus());
}

function only(samples: Sample[], name: string, match: Record<string, string>): Sample {
  const found = select(samples, name, match);
  assert.equal(found.length, 1, `one ${name} series for ${JSON.stringify(match)}; got ${JSON.stringify(found.map((s) => s.labels))}`);
  return found[0];
}

const ISTIO_LABELS = [
  "reporter", "source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
  "source_canonical_service", "source_canonical_revision", "source_cluster", "destination_workload",
  "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
  "destination_service", "destination_service_name", "destination_service_namespace", "destination_canonical_service",
  "destination_canonical_revision", "destination_cluster", "request_protocol", "response_flags",
  "connection_security_policy", "response_code", "grpc_response_status",
];

test("both reporters carry Istio's exact 25-label set, learned through the metadata exchange", async () => {
  const n = 5;
  for (let i = 0; i < n; i++) {
    const res = await httpRequest(`http://127.0.0.1:${client.outboundPorts.reviews}/reviews/1`, { headers: { host: "reviews:9080" } });
    assert.equal(res.status, 200);
    assert.equal(res.headers["x-envoy-peer-metadata"], undefined, "exchange headers stripped before the client");
    assert.equal(res.headers["x-envoy-peer-metadata-id"], undefined);
  }
  const seenByApp = app.requests.filter((r) => r.url === "/reviews/1");
  assert.equal(seenByApp.length, n);
  for (const r of seenByApp) {
    assert.equal(r.headers["x-envoy-peer-metadata"], undefined, "exchange headers stripped before the app");
    assert.equal(r.headers["x-envoy-peer-metadata-id"], undefined);
  }

  const common = {
    source_workload: "productpage-v1", source_workload_namespace: "default", source_principal: "unknown",
    source_app: "productpage", source_version: "v1", source_canonical_service: "productpage",
    source_canonical_revision: "v1", source_cluster: "Kubernetes",
    destination_workload: "reviews-v2", destination_workload_namespace: "bookinfo", destination_principal: "unknown",
    destination_app: "reviews", destination_version: "v2", destination_service: "reviews.bookinfo.svc.cluster.local",
    destination_service_name: "reviews", destination_service_namespace: "bookinfo", destination_canonical_service: "reviews",
    destination_canonical_revision: "v2", destination_cluster: "east", request_protocol: "http", response_flags: "-",
    response_code: "200", grpc_response_status: "",
  };
  const src = only(await metrics(client), "istio_requests_total", { reporter: "source", destination_workload: "reviews-v2" });
  assert.deepEqual(src.labels, { reporter: "source", ...common, connection_security_policy: "unknown" });
  assert.equal(src.value, n);
  assert.deepEqual(Object.keys(src.labels).sort(), [...ISTIO_LABELS].sort());

  const dst = only(await metrics(server), "istio_requests_total", { reporter: "destination", source_workload: "productpage-v1" });
  assert.deepEqual(dst.labels, { reporter: "destination", ...common, connection_security_policy: "none" });
  assert.equal(dst.value, n);
});

test("histograms have _bucket, _sum and _count with the request count", async () => {
  const samples = await metrics(client);
  for (const name of ["istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"]) {
    const count = only(samples, `${name}_count`, { reporter: "source", destination_workload: "reviews-v2" });
    assert.ok(count.value >= 5, `${name}_count ${count.value}`);
    const inf = only(samples, `${name}_bucket`, { reporter: "source", destination_workload: "reviews-v2", le: "+Inf" });
    assert.equal(inf.value, count.value);
    const buckets = select(samples, `${name}_bucket`, { reporter: "source", destination_workload: "reviews-v2" });
    assert.equal(buckets.length, 20, "Envoy's 19 default buckets plus +Inf");
    only(samples, `${name}_sum`, { reporter: "source", destination_workload: "reviews-v2" });
  }
  const reqBytes = only(samples, "istio_request_bytes_sum", { reporter: "source", destination_workload: "reviews-v2" });
  assert.ok(reqBytes.value > 0, "request bytes include headers");
});

test("a 5xx from the app is reported with its code on both sides", async () => {
  for (let i = 0; i < 3; i++) {
    assert.equal((await httpRequest(`http://127.0.0.1:${client.outboundPorts.reviews}/status/503`)).status, 503);
  }
  only(await metrics(client), "istio_requests_total", { reporter: "source", destination_workload: "reviews-v2", response_code: "503", response_flags: "-" });
  const dst = only(await metrics(server), "istio_requests_total", { reporter: "destination", response_code: "503" });
  assert.equal(dst.value, 3);
});

test("a request with no peer: unknown source on the server, and no exchange header in the answer", async () => {
  const res = await httpRequest(`http://127.0.0.1:${server.inboundPort}/direct`);
  assert.equal(res.status, 200);
  assert.equal(res.headers["x-envoy-peer-metadata"], undefined, "server answers the exchange only when asked");
  const s = only(await metrics(server), "istio_requests_total", { reporter: "destination", source_workload: "unknown" });
  assert.equal(s.labels.source_canonical_service, "unknown");
  assert.equal(s.labels.source_canonical_revision, "latest");
  assert.equal(s.labels.destination_workload, "reviews-v2");
  assert.equal(s.value, 1);
});

test("an upstream without a sidecar is identified by its endpoint's istio.workload label", async () => {
  assert.equal((await httpRequest(`http://127.0.0.1:${client.outboundPorts.ratings}/ratings/1`)).status, 200);
  const s = only(await metrics(client), "istio_requests_total", { reporter: "source", destination_service_name: "ratings" });
  assert.equal(s.labels.destination_workload, "ratings-v1");
  assert.equal(s.labels.destination_workload_namespace, "bookinfo");
  assert.equal(s.labels.destination_canonical_service, "ratings");
  assert.equal(s.labels.destination_canonical_revision, "v1");
  assert.equal(s.labels.destination_service, "ratings.bookinfo.svc.cluster.local");
});

test("gRPC: request_protocol grpc and grpc_response_status from the trailers", async () => {
  const session = http2.connect(`http://127.0.0.1:${client.outboundPorts.grpc}`);
  try {
    for (const status of ["0", "5", "5"]) {
      await new Promise<void>((ok, fail) => {
        const req = session.request({ ":method": "POST", ":path": "/helloworld.Greeter/SayHello", "content-type": "application/grpc", te: "trailers", "x-grpc-status": status });
        req.on("error", fail);
        req.on("data", () => {});
        req.on("end", () => ok());
        req.end(Buffer.from([0, 0, 0, 0, 0]));
      });
    }
  } finally {
    session.close();
  }
  const samples = await metrics(client);
  assert.equal(only(samples, "istio_requests_total", { request_protocol: "grpc", grpc_response_status: "0" }).value, 1);
  const notFound = only(samples, "istio_requests_total", { request_protocol: "grpc", grpc_response_status: "5" });
  assert.equal(notFound.value, 2);
  assert.equal(notFound.labels.response_code, "200");
});

test("response_flags carry Envoy's short codes", async () => {
  // Port 9 (discard) refuses the connection: upstream connection failure.
  assert.equal((await httpRequest(`http://127.0.0.1:${client.outboundPorts.nowhere}/`)).status, 503);
  const s = only(await metrics(client), "istio_requests_total", { destination_service_name: "nowhere" });
  assert.equal(s.labels.response_flags, "UF");
  assert.equal(s.labels.response_code, "503");
  assert.equal(s.labels.destination_workload, "unknown");
});
