// Trace context through a chain of real Envoy sidecars with a real Zipkin server: a gateway ->
// productpage -> reviews and ratings, the apps forwarding trace headers. One trace, one span
// per proxy hop, the right parent/child tree, span kinds, service names, tags and nested times.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { eventually, httpRequest, staticCluster, type Upstream } from "../../tools/harness/envoy.ts";
import { startSidecar, type Sidecar, type Workload } from "../../tools/harness/sidecars.ts";
import { startZipkin, type Zipkin, type ZipkinSpan } from "../../tools/harness/zipkin.ts";

const TRACE_HEADERS = ["x-request-id", "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"];

const gatewayWl: Workload = { workload: "istio-ingressgateway", namespace: "istio-system", app: "istio-ingressgateway", version: "v1" };
const productpageWl: Workload = { workload: "productpage-v1", namespace: "default", app: "productpage", version: "v1" };
const reviewsWl: Workload = { workload: "reviews-v1", namespace: "default", app: "reviews", version: "v1" };
const ratingsWl: Workload = { workload: "ratings-v1", namespace: "default", app: "ratings", version: "v1" };

let zipkin: Zipkin;
const sidecars: Sidecar[] = [];
const apps: Upstream[] = [];
let gateway: Sidecar;
let productpage: Sidecar;
let forwardHeaders = true;

/** An app that answers `/`, calling `calls` (ports of its sidecar's outbound listeners) first. */
async function startApp(calls: () => number[]): Promise<Upstream> {
  const server = http.createServer(async (req, res) => {
    const forwarded: Record<string, string> = {};
    if (forwardHeaders) {
      for (const h of TRACE_HEADERS) if (typeof req.headers[h] === "string") forwarded[h] = req.headers[h] as string;
    }
    for (const port of calls()) await httpRequest(`http://127.0.0.1:${port}/`, { headers: forwarded });
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok\n");
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = (server.address() as { port: number }).port;
  const app = { port, requests: [], close: () => new Promise<void>((ok) => { server.closeAllConnections(); server.close(() => ok()); }) };
  apps.push(app);
  return app;
}

before(async () => {
  zipkin = await startZipkin();
  const zipkinCluster = staticCluster("zipkin", zipkin.port);
  const plugin = { config: { tracing: { random_sampling_percentage: 100, zipkin: { cluster: "zipkin" }, flush_interval: "200ms", custom_tags: { team: { literal: { value: "bookinfo" } }, user: { header: { name: "X-User", default_value: "anonymous" } } } } } };
  const leaf = await startApp(() => []);
  const reviews = await startSidecar({ workload: reviewsWl, appPort: leaf.port, plugin, clusters: [zipkinCluster] });
  const ratings = await startSidecar({ workload: ratingsWl, appPort: leaf.port, plugin, clusters: [zipkinCluster] });
  const productApp = await startApp(() => [productpage.outboundPorts.reviews, productpage.outboundPorts.ratings]);
  productpage = await startSidecar({
    workload: productpageWl,
    appPort: productApp.port,
    outbound: [
      { service: { name: "reviews", namespace: "default" }, port: reviews.inboundPort },
      { service: { name: "ratings", namespace: "default" }, port: ratings.inboundPort },
    ],
    plugin,
    clusters: [zipkinCluster],
  });
  gateway = await startSidecar({
    workload: gatewayWl,
    outbound: [{ service: { name: "productpage", namespace: "default" }, port: productpage.inboundPort }],
    plugin,
    clusters: [zipkinCluster],
  });
  sidecars.push(reviews, ratings, productpage, gateway);
});

after(async () => {
  for (const s of sidecars) await s.envoy.stop();
  for (const a of apps) await a.close();
  await zipkin?.stop();
});

async function traceOf(requestId: string, spans: number): Promise<ZipkinSpan[]> {
  return eventually(`${spans} spans with request id ${requestId}`, async () => {
    const traces = await zipkin.traces({ annotationQuery: `guid:x-request-id=${requestId}` });
    const all = traces.flat();
    const traceIds = new Set(all.map((s) => s.traceId));
    if (traceIds.size !== 1) return undefined;
    const full = await zipkin.trace([...traceIds][0]);
    return full.length >= spans ? full : undefined;
  }, 20000);
}

test("one connected trace across all hops: client and server span per proxy, right tree and tags", async () => {
  const requestId = "11111111-2222-4333-8444-555555555555";
  const res = await httpRequest(`http://127.0.0.1:${gateway.outboundPorts.productpage}/productpage`, { headers: { "x-request-id": requestId, "x-user": "jason" } });
  assert.equal(res.status, 200);
  const spans = await traceOf(requestId, 6);
  assert.equal(spans.length, 6, JSON.stringify(spans, null, 1));
  const byId = new Map(spans.map((s) => [s.id, s]));
  const root = spans.filter((s) => !s.parentId);
  assert.equal(root.length, 1, "one root");
  assert.equal(root[0].kind, "CLIENT");
  assert.equal(root[0].localEndpoint?.serviceName, "istio-ingressgateway.istio-system");

  const childrenOf = (id: string) => spans.filter((s) => s.parentId === id);
  const [ppServer] = childrenOf(root[0].id);
  assert.equal(ppServer.kind, "SERVER");
  assert.equal(ppServer.localEndpoint?.serviceName, "productpage.default");
  const ppClients = childrenOf(ppServer.id);
  assert.equal(ppClients.length, 2, "productpage calls reviews and ratings");
  const leafServices = new Set<string>();
  for (const c of ppClients) {
    assert.equal(c.kind, "CLIENT");
    assert.equal(c.localEndpoint?.serviceName, "productpage.default");
    const [server] = childrenOf(c.id);
    assert.equal(server.kind, "SERVER");
    leafServices.add(server.localEndpoint!.serviceName!);
    assert.equal(childrenOf(server.id).length, 0);
  }
  assert.deepEqual([...leafServices].sort(), ["ratings.default", "reviews.default"]);

  for (const s of spans) {
    assert.equal(s.tags?.["guid:x-request-id"], requestId);
    assert.equal(s.tags?.["http.status_code"], "200");
    assert.equal(s.tags?.["http.method"], "GET");
    assert.equal(s.tags?.["component"], "proxy");
    assert.equal(s.tags?.["team"], "bookinfo", "literal custom tag");
    // Header tag: the request into the gateway carries x-user; the app does not forward it.
    assert.equal(s.tags?.["user"], s === root[0] || s === ppServer ? "jason" : "anonymous", `header custom tag on ${s.name}`);
    assert.ok(s.tags?.["node_id"]?.startsWith("sidecar~"));
    assert.ok(s.tags?.["upstream_cluster"]);
    assert.ok(s.tags?.["istio.canonical_service"]);
    assert.ok(s.duration! > 0);
    // A child starts after its parent and ends before it (1 ms slack for clock granularity).
    const parent = s.parentId ? byId.get(s.parentId) : undefined;
    if (parent) {
      assert.ok(s.timestamp! >= parent.timestamp! - 1000, `${s.name} starts within its parent`);
      assert.ok(s.timestamp! + s.duration! <= parent.timestamp! + parent.duration! + 1000, `${s.name} ends within its parent`);
    }
  }
  assert.equal(ppServer.tags?.["istio.canonical_service"], "productpage");
  assert.equal(root[0].tags?.["upstream_cluster"], "outbound|80||productpage.default.svc.cluster.local");
});

test("without header forwarding by the app, each hop from the app starts its own trace (documented)", async () => {
  forwardHeaders = false;
  try {
    const requestId = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    assert.equal((await httpRequest(`http://127.0.0.1:${gateway.outboundPorts.productpage}/`, { headers: { "x-request-id": requestId } })).status, 200);
    const first = await traceOf(requestId, 2);
    assert.equal(first.length, 2, "gateway client span and productpage server span share the trace");
    // productpage's calls carry no context: new request ids and new traces, one per call.
    const traces = await eventually("the app's calls as their own traces", async () => {
      const t = (await zipkin.traces({ serviceName: "reviews.default" })).filter((tr) => tr.every((s) => s.tags?.["guid:x-request-id"] !== requestId) && tr.length === 2 && !tr.some((s) => s.tags?.["guid:x-request-id"] === "11111111-2222-4333-8444-555555555555"));
      return t.length >= 1 ? t : undefined;
    });
    const t = traces[0];
    assert.deepEqual(t.map((s) => s.kind).sort(), ["CLIENT", "SERVER"]);
    assert.ok(t.some((s) => !s.parentId), "a new root at productpage's outbound sidecar");
  } finally {
    forwardHeaders = true;
  }
});
