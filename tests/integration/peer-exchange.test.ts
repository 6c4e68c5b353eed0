// Interoperability of the HTTP metadata exchange with real Istio sidecars: the header this
// plugin injects is byte-identical to what Istio's C++ filter sends for the same node, and a
// header as Istio sends it is understood. The expected value below is C++ protobuf's
// deterministic serialization of the Struct (see tests/unit/peer/codec.spec.ts for its origin).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  freePort, httpListener, httpRequest, startEnvoy, startUpstream, wasmHttpFilter, type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { serviceCluster } from "../harness/sidecars.ts";
import { parsePrometheus, select } from "../harness/prometheus.ts";

const ISTIO_PRODUCTPAGE_HEADER =
  "ChoKCkNMVVNURVJfSUQSDBoKS3ViZXJuZXRlcwqUAQoGTEFCRUxTEokBKoYBChQKA2FwcBINGgtwcm9kdWN0cGFnZQowCh9zZXJ2aWNlLmlz" +
  "dGlvLmlvL2Nhbm9uaWNhbC1uYW1lEg0aC3Byb2R1Y3RwYWdlCisKI3NlcnZpY2UuaXN0aW8uaW8vY2Fub25pY2FsLXJldmlzaW9uEgQaAnYx" +
  "Cg8KB3ZlcnNpb24SBBoCdjEKHAoETkFNRRIUGhJwcm9kdWN0cGFnZS12MS1hYmMKFgoJTkFNRVNQQUNFEgkaB2RlZmF1bHQKUgoFT1dORVIS" +
  "SRpHa3ViZXJuZXRlczovL2FwaXMvYXBwcy92MS9uYW1lc3BhY2VzL2RlZmF1bHQvZGVwbG95bWVudHMvcHJvZHVjdHBhZ2UtdjEKIQoNV09S" +
  "S0xPQURfTkFNRRIQGg5wcm9kdWN0cGFnZS12MQ==";
const NODE_ID = "sidecar~10.0.0.7~productpage-v1-abc.default~default.svc.cluster.local";

let app: Upstream;
let envoy: Envoy;
let outbound: number;
let inbound: number;

before(async () => {
  app = await startUpstream();
  outbound = await freePort();
  inbound = await freePort();
  envoy = await startEnvoy({
    name: "productpage",
    node: {
      id: NODE_ID,
      cluster: "productpage.default",
      metadata: {
        NAME: "productpage-v1-abc",
        NAMESPACE: "default",
        WORKLOAD_NAME: "productpage-v1",
        CLUSTER_ID: "Kubernetes",
        OWNER: "kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1",
        LABELS: { app: "productpage", version: "v1", "service.istio.io/canonical-name": "productpage", "service.istio.io/canonical-revision": "v1", "pod-template-hash": "abc" },
        ISTIO_VERSION: "1.28.0",
        INTERCEPTION_MODE: "REDIRECT",
      },
    },
    listeners: [
      httpListener({ name: "outbound", port: outbound, direction: "OUTBOUND", cluster: "app", filters: [wasmHttpFilter()] }),
      httpListener({ name: "inbound", port: inbound, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter()] }),
    ],
    clusters: [serviceCluster("app", { name: "details", namespace: "default" }, [{ port: app.port }])],
  });
});

after(async () => {
  await envoy?.stop();
  await app?.close();
});

test("outbound: the injected x-envoy-peer-metadata is byte-identical to Istio's for the same node", async () => {
  assert.equal((await httpRequest(`http://127.0.0.1:${outbound}/`)).status, 200);
  const seen = app.requests.at(-1)!;
  assert.equal(seen.headers["x-envoy-peer-metadata"], ISTIO_PRODUCTPAGE_HEADER);
  assert.equal(seen.headers["x-envoy-peer-metadata-id"], NODE_ID);
});

test("inbound: a header as an Istio sidecar sends it gives the peer's labels, and is answered", async () => {
  const res = await httpRequest(`http://127.0.0.1:${inbound}/`, {
    headers: { "x-envoy-peer-metadata": ISTIO_PRODUCTPAGE_HEADER, "x-envoy-peer-metadata-id": "sidecar~10.9.9.9~other.default~default.svc.cluster.local" },
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers["x-envoy-peer-metadata"], ISTIO_PRODUCTPAGE_HEADER, "our own identity answers the exchange");
  const s = select(parsePrometheus(await envoy.prometheus()), "istio_requests_total", { reporter: "destination" });
  assert.equal(s.length, 1);
  assert.equal(s[0].labels.source_workload, "productpage-v1");
  assert.equal(s[0].labels.source_app, "productpage");
  assert.equal(s[0].labels.source_canonical_revision, "v1");
  assert.equal(s[0].labels.source_cluster, "Kubernetes");
});

test("inbound: unpadded base64 is accepted, as Istio's decoder does", async () => {
  const before = select(parsePrometheus(await envoy.prometheus()), "istio_requests_total", { reporter: "destination", source_workload: "productpage-v1" });
  const res = await httpRequest(`http://127.0.0.1:${inbound}/`, {
    headers: { "x-envoy-peer-metadata": ISTIO_PRODUCTPAGE_HEADER.replace(/=+$/, ""), "x-envoy-peer-metadata-id": "sidecar~10.9.9.8~unpadded" },
  });
  assert.equal(res.status, 200);
  const after = select(parsePrometheus(await envoy.prometheus()), "istio_requests_total", { reporter: "destination", source_workload: "productpage-v1" });
  assert.equal(after[0].value, before[0].value + 1);
});

test("inbound: garbage metadata never fails the request; labels fall back to unknown and the event is counted", async () => {
  for (const bad of ["!!!not base64!!!", "AAAA", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).toString("base64"), "x".repeat(20000)]) {
    const res = await httpRequest(`http://127.0.0.1:${inbound}/`, { headers: { "x-envoy-peer-metadata": bad, "x-envoy-peer-metadata-id": `bad-${bad.length}` } });
    assert.equal(res.status, 200);
    assert.equal(app.requests.at(-1)!.headers["x-envoy-peer-metadata"], undefined, "stripped even when malformed");
  }
  const samples = parsePrometheus(await envoy.prometheus());
  // "AAAA" is valid base64 of three zero bytes, which is not protobuf (field number 0).
  assert.equal(select(samples, "mesh_telemetry_peer_metadata_invalid_total")[0]?.value, 4);
  assert.ok(select(samples, "istio_requests_total", { reporter: "destination", source_workload: "unknown" })[0].value >= 4);
});
