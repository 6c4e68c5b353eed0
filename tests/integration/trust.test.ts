// Trust in Istio's metadata exchange (docs/trust.md). x-envoy-peer-metadata is a claim the
// caller makes about itself; this file shows when the plugin believes it and where it sends its
// own, under the trust settings:
//
//   peer_metadata_trust: "always" (default, Istio's sidecar behaviour) | "mtls_only" | "never"
//   skip_external_clusters: true (default) | false
//
// The mTLS cases use a throwaway mesh CA (tests/harness/ca.ts) between two real Envoys.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import {
  freePort, httpListener, httpRequest, staticCluster, startEnvoy, startUpstream, wasmHttpFilter, type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { originateMtls, serviceCluster, sidecarNode, strictMtls } from "../harness/sidecars.ts";
import { parsePrometheus, select, sum, type Sample } from "../harness/prometheus.ts";
import { peerMetadataBase64 } from "../fixtures/hostile.ts";
import { issueWorkloadCert, throwawayCa, type WorkloadCert } from "../harness/ca.ts";

const reviews = { workload: "reviews-v1", namespace: "default", app: "reviews", version: "v1" };
const productpage = { workload: "productpage-v1", namespace: "default", app: "productpage", version: "v1" };
/** What an outside caller claims to be. */
const SPOOFED = peerMetadataBase64("payments-v1", "prod", "payments");

let app: Upstream;
let serverCert: WorkloadCert;
let clientCert: WorkloadCert;
const running: Envoy[] = [];

before(async () => {
  app = await startUpstream();
  const ca = throwawayCa();
  serverCert = issueWorkloadCert(ca, { namespace: "default", serviceAccount: "reviews" });
  clientCert = issueWorkloadCert(ca, { namespace: "default", serviceAccount: "productpage" });
});

afterEach(async () => {
  for (const e of running.splice(0)) await e.stop();
});

after(async () => {
  await app?.close();
});

interface Mesh {
  server: Envoy;
  client: Envoy;
  /** Server listeners: plain text, and STRICT mTLS. */
  plain: number;
  mtls: number;
  /** Client (outbound) listeners: to the server over mTLS, to PassthroughCluster, to an istio.external cluster. */
  toServer: number;
  toPassthrough: number;
  toExternal: number;
}

/** A server sidecar (reviews) and a client sidecar (productpage) with the given plugin configs. */
async function mesh(serverConfig: unknown, clientConfig: unknown = {}, externalApp: Upstream = app): Promise<Mesh> {
  const [plain, mtls, toServer, toPassthrough, toExternal] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const inbound = (name: string, port: number) =>
    httpListener({ name, port, direction: "INBOUND", cluster: "inbound|9080||", filters: [wasmHttpFilter({ config: serverConfig })] });
  const server = await startEnvoy({
    name: "trust-server",
    node: sidecarNode(reviews),
    listeners: [inbound("plain", plain), strictMtls(inbound("mtls", mtls), serverCert, "http")],
    clusters: [serviceCluster("inbound|9080||", { name: "reviews", namespace: "default" }, [{ port: app.port }])],
  });
  running.push(server);
  const outbound = (name: string, port: number, cluster: string) =>
    httpListener({ name, port, direction: "OUTBOUND", cluster, filters: [wasmHttpFilter({ config: clientConfig })] });
  const external = staticCluster("outbound|443||api.example.com", externalApp.port);
  external.metadata = { filter_metadata: { istio: { external: true, services: [{ host: "api.example.com", name: "api.example.com", namespace: "default" }] } } };
  const client = await startEnvoy({
    name: "trust-client",
    node: sidecarNode(productpage),
    listeners: [
      outbound("to-server", toServer, "outbound|9080||reviews.default.svc.cluster.local"),
      outbound("to-passthrough", toPassthrough, "PassthroughCluster"),
      outbound("to-external", toExternal, "outbound|443||api.example.com"),
    ],
    clusters: [
      originateMtls(
        serviceCluster("outbound|9080||reviews.default.svc.cluster.local", { name: "reviews", namespace: "default" }, [{ port: mtls }]),
        clientCert, { service: { name: "reviews", namespace: "default" }, port: 9080, protocol: "http" },
      ),
      staticCluster("PassthroughCluster", externalApp.port),
      external,
    ],
  });
  running.push(client);
  return { server, client, plain, mtls, toServer, toPassthrough, toExternal };
}

async function samples(e: Envoy): Promise<Sample[]> {
  return parsePrometheus(await e.prometheus());
}

function lastSeen(upstream: Upstream = app) {
  return upstream.requests.at(-1)!.headers;
}

// ---------------------------------------------------------------------------------------------
// Today's behaviour

test("default (always): a plain-text caller's claimed identity becomes its labels, as in Istio's sidecars", async () => {
  const m = await mesh({});
  const res = await httpRequest(`http://127.0.0.1:${m.plain}/`, { headers: { "x-envoy-peer-metadata": SPOOFED, "x-envoy-peer-metadata-id": "outsider" } });
  assert.equal(res.status, 200);
  const s = select(await samples(m.server), "istio_requests_total", { reporter: "destination" });
  assert.equal(s[0].labels.source_workload, "payments-v1", "trusted without any proof (the risk docs/trust.md describes)");
  assert.equal(s[0].labels.connection_security_policy, "none");
  assert.ok(res.headers["x-envoy-peer-metadata"], "and the server reveals its own identity in the answer");
  assert.equal(lastSeen()["x-envoy-peer-metadata"], undefined, "stripped before the app");
});

test("over mTLS the peer's labels come with its certificate: principal and mutual_tls", async () => {
  const m = await mesh({});
  assert.equal((await httpRequest(`http://127.0.0.1:${m.toServer}/`)).status, 200);
  const s = select(await samples(m.server), "istio_requests_total", { reporter: "destination" });
  assert.equal(s[0].labels.source_workload, "productpage-v1");
  assert.equal(s[0].labels.source_principal, clientCert.spiffeId);
  assert.equal(s[0].labels.connection_security_policy, "mutual_tls");
  assert.equal(lastSeen()["x-envoy-peer-metadata"], undefined);
});

// ---------------------------------------------------------------------------------------------
// Pending the trust settings (docs/trust.md, "Proposed configuration")

const PENDING = "pending: peer_metadata_trust / skip_external_clusters (docs/trust.md)";

test("the trust settings are validated, naming the field", async () => {
  for (const [config, line] of [
    [{ peer_metadata_trust: "sometimes" }, /field 'peer_metadata_trust' \(offset \d+\): expected always, mtls_only or never/],
    [{ peer_metadata_trust: true }, /field 'peer_metadata_trust' \(offset \d+\): expected a string, got bool/],
    [{ skip_external_clusters: "yes" }, /field 'skip_external_clusters' \(offset \d+\): expected a boolean, got string/],
  ] as const) {
    const port = await freePort();
    const e = await startEnvoy({
      name: "trust-refused",
      allowFailure: true,
      listeners: [httpListener({ name: "l", port, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ config })] })],
      clusters: [staticCluster("app", app.port)],
    });
    try {
      assert.equal(e.exitCode, 1, JSON.stringify(config));
      assert.match(e.logs(), line);
    } finally {
      await e.stop();
    }
  }
});

test("never: claimed identities are ignored and counted, still stripped, and not answered", async () => {
  const m = await mesh({ peer_metadata_trust: "never" });
  const res = await httpRequest(`http://127.0.0.1:${m.plain}/`, { headers: { "x-envoy-peer-metadata": SPOOFED, "x-envoy-peer-metadata-id": "outsider" } });
  assert.equal(res.status, 200);
  assert.equal(lastSeen()["x-envoy-peer-metadata"], undefined, "stripped before the app");
  assert.equal(lastSeen()["x-envoy-peer-metadata-id"], undefined);
  assert.equal(res.headers["x-envoy-peer-metadata"], undefined, "no identity revealed to an untrusted caller");
  // Even over mTLS (e.g. a gateway whose callers are outside the mesh).
  assert.equal((await httpRequest(`http://127.0.0.1:${m.toServer}/`)).status, 200);
  const s = await samples(m.server);
  const req = select(s, "istio_requests_total", { reporter: "destination" });
  assert.ok(req.every((x) => x.labels.source_workload === "unknown"), "no label from a claimed identity");
  assert.equal(sum(select(s, "mesh_telemetry_peer_metadata_untrusted_total")), 2);
  assert.equal(sum(select(s, "mesh_telemetry_peer_metadata_invalid_total")), 0, "untrusted is not invalid");
});

test("mtls_only: trusted over mTLS, ignored and counted over plain text", async () => {
  const m = await mesh({ peer_metadata_trust: "mtls_only" });
  const res = await httpRequest(`http://127.0.0.1:${m.plain}/`, { headers: { "x-envoy-peer-metadata": SPOOFED, "x-envoy-peer-metadata-id": "outsider" } });
  assert.equal(res.status, 200);
  assert.equal(res.headers["x-envoy-peer-metadata"], undefined, "no answer over plain text");
  assert.equal((await httpRequest(`http://127.0.0.1:${m.toServer}/`)).status, 200);
  const s = await samples(m.server);
  assert.equal(select(s, "istio_requests_total", { reporter: "destination", source_workload: "payments-v1" }).length, 0);
  assert.equal(sum(select(s, "istio_requests_total", { reporter: "destination", source_workload: "productpage-v1", connection_security_policy: "mutual_tls" })), 1);
  assert.equal(sum(select(s, "mesh_telemetry_peer_metadata_untrusted_total")), 1);
});

test("skip_external_clusters: no identity sent to PassthroughCluster or istio.external clusters; mesh clusters still get it", async () => {
  const m = await mesh({}, {});
  assert.equal((await httpRequest(`http://127.0.0.1:${m.toPassthrough}/`)).status, 200);
  assert.equal(lastSeen()["x-envoy-peer-metadata"], undefined, "PassthroughCluster");
  assert.equal(lastSeen()["x-envoy-peer-metadata-id"], undefined);
  assert.equal((await httpRequest(`http://127.0.0.1:${m.toExternal}/`)).status, 200);
  assert.equal(lastSeen()["x-envoy-peer-metadata"], undefined, "cluster with istio.external metadata");
  assert.equal((await httpRequest(`http://127.0.0.1:${m.toServer}/`)).status, 200);
  const s = select(await samples(m.server), "istio_requests_total", { reporter: "destination" });
  assert.equal(s[0].labels.source_workload, "productpage-v1", "mesh peers still exchange");
});

test("skip_external_clusters: an external service's answer cannot claim a mesh identity", async () => {
  const liar = await startUpstream((_req, res) => {
    res.writeHead(200, { "x-envoy-peer-metadata": SPOOFED, "x-envoy-peer-metadata-id": "liar" });
    res.end("ok\n");
  });
  try {
    const m = await mesh({}, {}, liar);
    const res = await httpRequest(`http://127.0.0.1:${m.toExternal}/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers["x-envoy-peer-metadata"], undefined, "stripped before the client app (today too)");
    const s = select(await samples(m.client), "istio_requests_total", { reporter: "source" });
    assert.notEqual(s[0].labels.destination_workload, "payments-v1");
  } finally {
    await liar.close();
  }
});

test("the peer cache cannot be poisoned: a later, different claim under a cached id is not answered from the cache", async () => {
  const m = await mesh({});
  const id = "sidecar~10.1.2.3~productpage-v1-abc.default~default.svc.cluster.local";
  // An attacker speaks first, with a real peer's id and its own claim...
  await httpRequest(`http://127.0.0.1:${m.plain}/`, { headers: { "x-envoy-peer-metadata": SPOOFED, "x-envoy-peer-metadata-id": id } });
  // ...then the real peer, with the same id and its true metadata.
  await httpRequest(`http://127.0.0.1:${m.plain}/`, { headers: { "x-envoy-peer-metadata": peerMetadataBase64("productpage-v1"), "x-envoy-peer-metadata-id": id } });
  const s = select(await samples(m.server), "istio_requests_total", { reporter: "destination", source_workload: "productpage-v1" });
  assert.equal(sum(s), 1, "the real peer's request is labelled with its own metadata");
});
