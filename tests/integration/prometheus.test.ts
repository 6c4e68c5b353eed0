// Real Prometheus scrapes two sidecars; the PromQL people run on Istio's metrics (per-service
// rates, latency quantiles, error ratio, the service graph) answers consistently with the
// traffic sent, and promtool finds the exposition clean.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { httpRequest, startUpstream, type Upstream } from "../harness/envoy.ts";
import { startSidecar, type Sidecar } from "../harness/sidecars.ts";
import { startPrometheus, type PrometheusServer } from "../harness/prometheus-server.ts";

const SERVICE = "reviews.bookinfo.svc.cluster.local";
let app: Upstream;
let server: Sidecar;
let client: Sidecar;
let prometheus: PrometheusServer;
const sent = { ok: 0, errors: 0 };

before(async () => {
  app = await startUpstream();
  server = await startSidecar({ workload: { workload: "reviews-v2", namespace: "bookinfo", app: "reviews", version: "v2" }, appPort: app.port });
  client = await startSidecar({
    workload: { workload: "productpage-v1", namespace: "bookinfo", app: "productpage", version: "v1" },
    outbound: [{ service: { name: "reviews", namespace: "bookinfo" }, endpoints: [{ port: server.inboundPort }] }],
  });
  prometheus = await startPrometheus([
    { address: `127.0.0.1:${client.envoy.adminPort}`, labels: { pod: "productpage-v1" } },
    { address: `127.0.0.1:${server.envoy.adminPort}`, labels: { pod: "reviews-v2" } },
  ]);
  // One request of each kind first, so both series exist when Prometheus first scrapes them
  // (rate() cannot see what a series held before its first sample).
  assert.equal((await httpRequest(`http://127.0.0.1:${client.outboundPorts.reviews}/`)).status, 200);
  assert.equal((await httpRequest(`http://127.0.0.1:${client.outboundPorts.reviews}/status/503`)).status, 503);
  await prometheus.waitForScrapes(1);
  // Then three seconds of traffic: every fifth request fails with 503, the others take ~30 ms.
  const deadline = Date.now() + 3000;
  let i = 0;
  while (Date.now() < deadline) {
    const fail = i++ % 5 === 4;
    const res = await httpRequest(`http://127.0.0.1:${client.outboundPorts.reviews}${fail ? "/status/503" : "/delay/30"}`);
    if (fail) {
      assert.equal(res.status, 503);
      sent.errors++;
    } else {
      assert.equal(res.status, 200);
      sent.ok++;
    }
  }
  await prometheus.waitForScrapes(2);
});

after(async () => {
  await prometheus?.stop();
  await client?.envoy.stop();
  await server?.envoy.stop();
  await app?.close();
});

test("per-service request rate by source workload and response code", async () => {
  const rows = await prometheus.query(
    `sum(rate(istio_requests_total{destination_service="${SERVICE}"}[1m])) by (source_workload, response_code)`,
  );
  const byCode = Object.fromEntries(rows.map((r) => [`${r.metric.source_workload}/${r.metric.response_code}`, r.value]));
  assert.deepEqual(Object.keys(byCode).sort(), ["productpage-v1/200", "productpage-v1/503"]);
  const ratio = byCode["productpage-v1/200"] / byCode["productpage-v1/503"];
  assert.ok(Math.abs(ratio - sent.ok / sent.errors) / (sent.ok / sent.errors) < 0.25, `ok/error rate ratio ${ratio}, sent ${sent.ok}/${sent.errors}`);
});

test("exact totals through Prometheus match what was sent, on both reporters", async () => {
  for (const reporter of ["source", "destination"]) {
    const [total] = await prometheus.query(`sum(istio_requests_total{reporter="${reporter}",destination_service="${SERVICE}"})`);
    assert.equal(total.value, sent.ok + sent.errors + 2, reporter);
    const [errors] = await prometheus.query(`sum(istio_requests_total{reporter="${reporter}",response_code=~"5.."})`);
    assert.equal(errors.value, sent.errors + 1, reporter);
  }
});

test("p99 latency from the duration histogram falls in the bucket of the app's 30 ms delay", async () => {
  const [p99] = await prometheus.query(
    `histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",response_code="200",destination_service="${SERVICE}"}[1m])) by (le, source_workload))`,
  );
  assert.equal(p99.metric.source_workload, "productpage-v1");
  assert.ok(p99.value > 25 && p99.value <= 50, `p99 ${p99.value} ms, expected in the (25, 50] bucket`);
});

test("non-2xx error ratio matches the share of failed requests", async () => {
  const [ratio] = await prometheus.query(
    `sum(rate(istio_requests_total{reporter="destination",destination_service="${SERVICE}",response_code!~"2.."}[1m])) / sum(rate(istio_requests_total{reporter="destination",destination_service="${SERVICE}"}[1m]))`,
  );
  const expected = sent.errors / (sent.ok + sent.errors);
  assert.ok(Math.abs(ratio.value - expected) < 0.05, `error ratio ${ratio.value}, sent ${expected}`);
});

test("the service-graph query gives one edge productpage-v1 -> reviews", async () => {
  const rows = await prometheus.query(`sum by (source_workload, destination_service_name)(rate(istio_requests_total{reporter="source"}[1m]))`);
  assert.equal(rows.length, 1);
  assert.deepEqual(rows[0].metric, { source_workload: "productpage-v1", destination_service_name: "reviews" });
  assert.ok(rows[0].value > 0);
});

test("promtool check metrics parses the plugin's exposition; its only lint findings are inherent", async () => {
  const text = await client.envoy.prometheus();
  const ours = text.split("\n").filter((l) => /^(# TYPE )?istio_/.test(l)).join("\n") + "\n";
  assert.ok(ours.includes("istio_requests_total{"));
  const check = spawnSync("promtool", ["check", "metrics"], { input: ours, encoding: "utf8" });
  const findings = (check.stdout + check.stderr).split("\n").filter((l) => l.trim() !== "");
  // Envoy's exposition has no HELP lines, and Istio's metric name carries "milliseconds":
  // dashboards depend on that name, so both findings stay. Anything else is a defect.
  const inherent = /^istio_\w+ no help text$|^istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"$/;
  assert.deepEqual(findings.filter((l) => !inherent.test(l)), []);
  assert.ok(!/error/i.test(check.stderr), check.stderr);
});
