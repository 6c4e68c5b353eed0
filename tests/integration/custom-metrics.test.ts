// Istio stats-plugin configuration in real Envoy: custom dimensions from attribute expressions
// (with the extraStatTags they need), tags_to_remove, drop, and custom definitions.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  eventually, freePort, httpListener, httpRequest, staticCluster, startEnvoy, startUpstream, wasmHttpFilter, type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";

let app: Upstream;
let envoy: Envoy;
let port: number;

const config = {
  metrics: [
    {
      name: "requests_total",
      dimensions: { user_tier: "request.headers['x-user-tier'] | 'none'", request_method: "request.method" },
      tags_to_remove: ["source_principal", "destination_principal"],
    },
    { name: "request_bytes", drop: true },
    { dimensions: { route_kind: "xds.cluster_name" } },
  ],
  definitions: [
    { name: "requests_seen_total", value: "1" },
    { name: "response_body_bytes", value: "response.size", type: "HISTOGRAM" },
  ],
};

before(async () => {
  app = await startUpstream();
  port = await freePort();
  envoy = await startEnvoy({
    name: "custom",
    extraStatTags: ["user_tier", "request_method", "route_kind"],
    listeners: [httpListener({ name: "in", port, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ config })] })],
    clusters: [staticCluster("app", app.port)],
  });
});

after(async () => {
  await envoy?.stop();
  await app?.close();
});

test("custom dimensions, removed tags, dropped metrics and definitions as configured", async () => {
  for (let i = 0; i < 3; i++) assert.equal((await httpRequest(`http://127.0.0.1:${port}/bytes/100`, { headers: { "x-user-tier": "gold" } })).status, 200);
  for (let i = 0; i < 2; i++) assert.equal((await httpRequest(`http://127.0.0.1:${port}/bytes/100`, { method: "POST" })).status, 200);
  const samples = parsePrometheus(await envoy.prometheus());

  const gold = select(samples, "istio_requests_total", { user_tier: "gold", request_method: "GET" });
  assert.equal(gold.length, 1);
  assert.equal(gold[0].value, 3);
  assert.equal(select(samples, "istio_requests_total", { user_tier: "none", request_method: "POST" })[0].value, 2);
  assert.equal(gold[0].labels.route_kind, "app", "the unnamed entry applies to every metric");
  assert.ok(!("source_principal" in gold[0].labels) && !("destination_principal" in gold[0].labels));
  assert.equal(Object.keys(gold[0].labels).length, 25 - 2 + 3);

  assert.equal(select(samples, "istio_request_bytes_count").length, 0, "dropped");
  const responseBytes = select(samples, "istio_response_bytes_count");
  assert.ok(responseBytes.length > 0 && !("user_tier" in responseBytes[0].labels), "other metrics keep the standard labels");
  assert.equal(responseBytes[0].labels.route_kind, "app");

  const seen = select(samples, "istio_requests_seen_total");
  assert.equal(seen.reduce((a, s) => a + s.value, 0), 5);
  // Envoy merges histograms from the workers after the admin read that triggers the flush.
  const body = await eventually("histogram merged", async () => {
    const h = select(parsePrometheus(await envoy.prometheus()), "istio_response_body_bytes_count");
    return sum(h) === 5 ? h : undefined;
  });
  // Envoy keeps histogram sums in log-linear bins (about 5% wide), so the sum is approximate.
  const total = sum(select(parsePrometheus(await envoy.prometheus()), "istio_response_body_bytes_sum"));
  assert.ok(Math.abs(total - 500) <= 25, `five 100-byte bodies, sum ${total}`);
  assert.equal(body.length, 1, "as in Istio, definitions carry only the labels added to them, so GET and POST share a series");
  assert.deepEqual(Object.keys(body[0].labels), ["route_kind"], "the unnamed entry's dimension, and no standard label");
});

test("label values with separators, dots, quotes and non-ASCII cannot corrupt the stat name", async () => {
  const values = ["a;.;source_app=.=evil", "tail;.", "x=.=y", "dots.in.value", "größe-名前", 'quote"back\\slash'];
  for (const v of values) {
    assert.equal((await httpRequest(`http://127.0.0.1:${port}/`, { headers: { "x-user-tier": Buffer.from(v).toString("latin1") } })).status, 200);
  }
  const text = await envoy.prometheus();
  const samples = parsePrometheus(text);
  const tiers = select(samples, "istio_requests_total").map((s) => s.labels.user_tier).filter((t) => t !== "gold" && t !== "none");
  assert.deepEqual(tiers.sort(), ["a;_;source_app=_=evil", "dots.in.value", "größe-名前", 'quote"back\\slash', "tail;_", "x=_=y"].sort());
  for (const s of select(samples, "istio_requests_total")) {
    assert.equal(s.labels.source_app, "unknown", "no label injected through a value");
    assert.equal(Object.keys(s.labels).length, 26);
  }
  // Every line of the family parses as a metric with labels: no encoding leftovers in names.
  for (const line of text.split("\n").filter((l) => l.includes("requests_total"))) {
    assert.match(line, /^(# TYPE istio_requests_total counter|istio_requests_total\{.*\} \d+)$/);
  }
});
