// The metric-id cache is bounded: past `max_series` label tuples, requests are still counted,
// on one overflow series, and the overflow counter makes the explosion visible.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  freePort, httpListener, httpRequest, staticCluster, startEnvoy, startUpstream, wasmHttpFilter, type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";

let app: Upstream;
let envoy: Envoy;
let port: number;

before(async () => {
  app = await startUpstream();
  port = await freePort();
  envoy = await startEnvoy({
    name: "cardinality",
    listeners: [httpListener({ name: "in", port, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ config: { max_series: 3 } })] })],
    clusters: [staticCluster("app", app.port)],
  });
});

after(async () => {
  await envoy?.stop();
  await app?.close();
});

test("beyond max_series, new tuples go to the overflow series and are counted", async () => {
  const codes = [200, 201, 202, 203, 204, 205, 206];
  for (const code of codes) {
    for (let i = 0; i < 2; i++) assert.equal((await httpRequest(`http://127.0.0.1:${port}/status/${code}`)).status, code);
  }
  const samples = parsePrometheus(await envoy.prometheus());
  const all = select(samples, "istio_requests_total");
  const regular = all.filter((s) => s.labels.reporter !== "overflow");
  assert.deepEqual(regular.map((s) => s.labels.response_code).sort(), ["200", "201", "202"]);
  const overflow = select(samples, "istio_requests_total", { reporter: "overflow" });
  assert.equal(overflow.length, 1);
  assert.equal(overflow[0].value, 8, "4 codes x 2 requests past the limit");
  assert.equal(sum(all), codes.length * 2, "no request lost");
  assert.equal(select(samples, "mesh_telemetry_series_overflow_total")[0].value, 8);
});
