// First behaviour end to end: real Envoy loads the plugin as an HTTP filter and counts every
// request in istio_requests_total, with labels extracted by the bootstrap's stats_tags.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startEnvoy, startUpstream, freePort, httpListener, staticCluster, wasmHttpFilter, httpRequest,
  type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";

let upstream: Upstream;
let envoy: Envoy;
let outboundPort: number;
let inboundPort: number;

before(async () => {
  upstream = await startUpstream();
  outboundPort = await freePort();
  inboundPort = await freePort();
  envoy = await startEnvoy({
    name: "requests-total",
    listeners: [
      httpListener({ name: "outbound", port: outboundPort, direction: "OUTBOUND", cluster: "app", filters: [wasmHttpFilter()] }),
      httpListener({ name: "inbound", port: inboundPort, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter()] }),
    ],
    clusters: [staticCluster("app", upstream.port)],
  });
});

after(async () => {
  await envoy?.stop();
  await upstream?.close();
});

test("N requests through an outbound listener give istio_requests_total{reporter=source} N", async () => {
  const n = 17;
  for (let i = 0; i < n; i++) {
    const res = await httpRequest(`http://127.0.0.1:${outboundPort}/hello`);
    assert.equal(res.status, 200);
  }
  const samples = parsePrometheus(await envoy.prometheus());
  const series = select(samples, "istio_requests_total", { reporter: "source", response_code: "200" });
  assert.equal(series.length, 1, "one series for one label tuple");
  assert.equal(series[0].value, n);
});

test("inbound listener reports as destination, and each response code gets its own series", async () => {
  for (let i = 0; i < 3; i++) assert.equal((await httpRequest(`http://127.0.0.1:${inboundPort}/status/503`)).status, 503);
  for (let i = 0; i < 2; i++) assert.equal((await httpRequest(`http://127.0.0.1:${inboundPort}/status/404`)).status, 404);
  const samples = parsePrometheus(await envoy.prometheus());
  assert.equal(sum(select(samples, "istio_requests_total", { reporter: "destination", response_code: "503" })), 3);
  assert.equal(sum(select(samples, "istio_requests_total", { reporter: "destination", response_code: "404" })), 2);
  assert.equal(sum(select(samples, "istio_requests_total", { reporter: "source", response_code: "503" })), 0);
});

test("Prometheus sees clean names: no envoy_ prefix, no encoding leftovers", async () => {
  const text = await envoy.prometheus();
  const istioLines = text.split("\n").filter((l) => l.includes("istio_"));
  assert.ok(istioLines.length > 0);
  for (const line of istioLines) {
    assert.ok(!line.includes("=.="), line);
    assert.ok(!line.includes(";.;"), line);
    assert.ok(!/envoy_.*istio_/.test(line), line);
  }
});
