// Requests answered before they reach the plugin are counted, as Istio counts them: an RBAC
// filter ahead of the plugin (where Istio puts authorization) denies with 403, and the denied
// call still appears in istio_requests_total on the destination reporter with the caller's
// identity. Also: istio_build from node metadata, for the Mesh dashboard's versions panel.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { freePort, httpListener, httpRequest, startEnvoy, startUpstream, wasmHttpFilter, type Envoy, type Upstream } from "../harness/envoy.ts";
import { serviceCluster, sidecarNode, startSidecar, type Sidecar, type Workload } from "../harness/sidecars.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";

const CLIENT: Workload = { workload: "productpage-v1", namespace: "bookinfo", app: "productpage", version: "v1" };
const SERVER: Workload = { workload: "reviews-v2", namespace: "bookinfo", app: "reviews", version: "v2" };

// Denies every path under /admin, before the plugin in the filter chain.
const RBAC_DENY_ADMIN = {
  name: "envoy.filters.http.rbac",
  typed_config: {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
    rules: {
      action: "DENY",
      policies: { "deny-admin": { permissions: [{ url_path: { path: { prefix: "/admin" } } }], principals: [{ any: true }] } },
    },
  },
};

let app: Upstream;
let server: Envoy;
let client: Sidecar;

before(async () => {
  app = await startUpstream();
  const inboundPort = await freePort();
  const cluster = "inbound|9080||";
  server = await startEnvoy({
    name: "early-reply-server",
    node: sidecarNode(SERVER),
    listeners: [
      httpListener({
        name: "virtualInbound", port: inboundPort, direction: "INBOUND", cluster,
        filters: [RBAC_DENY_ADMIN, wasmHttpFilter({ rootId: "stats_inbound", config: { disable_host_header_fallback: true } })],
      }),
    ],
    clusters: [serviceCluster(cluster, { name: SERVER.app, namespace: SERVER.namespace }, [{ port: app.port }])],
  });
  client = await startSidecar({ workload: CLIENT, outbound: [{ service: { name: "reviews", namespace: "bookinfo" }, endpoints: [{ port: inboundPort }] }] });
});

after(async () => {
  await client?.envoy.stop();
  await server?.stop();
  await app?.close();
});

test("a request denied by RBAC ahead of the plugin is counted with the caller's identity", async () => {
  const port = client.outboundPorts.reviews;
  for (let i = 0; i < 3; i++) assert.equal((await httpRequest(`http://127.0.0.1:${port}/admin/x`)).status, 403);
  for (let i = 0; i < 2; i++) assert.equal((await httpRequest(`http://127.0.0.1:${port}/reviews/1`)).status, 200);
  const dest = parsePrometheus(await server.prometheus());
  const denied = select(dest, "istio_requests_total", { reporter: "destination", response_code: "403" });
  assert.equal(sum(denied), 3, "every denial counted on the destination reporter");
  assert.equal(denied[0].labels.source_workload, "productpage-v1");
  assert.equal(denied[0].labels.source_workload_namespace, "bookinfo");
  assert.equal(denied[0].labels.destination_workload, "reviews-v2");
  assert.equal(denied[0].labels.destination_service_name, "reviews");
  assert.equal(denied[0].labels.response_flags, "-", "RBAC's denial is not a response flag in Envoy 1.40's short codes");
  assert.equal(sum(select(dest, "istio_requests_total", { reporter: "destination", response_code: "200" })), 2);
  // The server's denial never carried its exchange answer, so the client knows only the
  // endpoint; the source reporter still counts the 403s.
  const src = parsePrometheus(await client.envoy.prometheus());
  assert.equal(sum(select(src, "istio_requests_total", { reporter: "source", response_code: "403" })), 3);
});

test("istio_build reports the proxy's Istio version from node metadata", async () => {
  const samples = parsePrometheus(await server.prometheus());
  const build = select(samples, "istio_build", { component: "proxy" });
  assert.equal(build.length, 1, JSON.stringify(build));
  assert.equal(build[0].labels.tag, "1.28.0");
  assert.equal(build[0].value, 1);
});
