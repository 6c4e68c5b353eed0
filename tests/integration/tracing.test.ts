// Trace context through a chain of real Envoy sidecars with a real Zipkin server: a gateway ->
// productpage -> reviews and ratings, the apps forwarding trace headers. One trace, one span
// per proxy hop, the right parent/child tree, span kinds, service names, tags and nested times.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { eventually, httpRequest, staticCluster } from "../harness/envoy.ts";
import { startTracedChain, type TracedChain } from "../harness/chain.ts";
import { startZipkin, type Zipkin, type ZipkinSpan } from "../harness/zipkin.ts";

let zipkin: Zipkin;
let chain: TracedChain;

before(async () => {
  zipkin = await startZipkin();
  const plugin = { config: { tracing: { random_sampling_percentage: 100, zipkin: { cluster: "zipkin" }, flush_interval: "200ms", custom_tags: { team: { literal: { value: "bookinfo" } }, user: { header: { name: "X-User", default_value: "anonymous" } } } } } };
  chain = await startTracedChain(plugin, [staticCluster("zipkin", zipkin.port)]);
});

after(async () => {
  await chain?.stop();
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
  const res = await httpRequest(`${chain.url}/productpage`, { headers: { "x-request-id": requestId, "x-user": "jason" } });
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
  chain.forwardHeaders = false;
  try {
    const requestId = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    assert.equal((await httpRequest(`${chain.url}/`, { headers: { "x-request-id": requestId } })).status, 200);
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
    chain.forwardHeaders = true;
  }
});
