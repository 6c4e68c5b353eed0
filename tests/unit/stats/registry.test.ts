// The metric-id cache (assembly/stats/registry.ts) as the plugin uses it, seen from the host:
// a label tuple's metrics are defined once, on first sight; past max_series, tuples share one
// overflow series and the overflow is counted.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { clientRequest, serverSidecar, TRACING_OFF } from "../../harness/sidecar-vms.ts";

const HTTP_FAMILIES = ["istio_requests_total", "istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"];

function requestWith(vm: ReturnType<typeof serverSidecar>, status: string): void {
  vm.request({ headers: clientRequest(), response: [[":status", status]] });
}

describe("metric ids per label tuple", () => {
  test("defined once per tuple, then only incremented and recorded", () => {
    const vm = serverSidecar({ config: TRACING_OFF });
    for (let i = 0; i < 20; i++) requestWith(vm, "200");
    for (const family of HTTP_FAMILIES) assert.equal(vm.metricsNamed(family).length, 1, `${family} defined once`);
    assert.equal(vm.metricValue("istio_requests_total", { response_code: "200" }), 20n);
    assert.equal(vm.metricsNamed("istio_request_bytes")[0].samples.length, 20);

    vm.calls.clear();
    requestWith(vm, "200");
    assert.equal(vm.calls.count({ fn: "define_metric" }), 0, "a warm tuple defines nothing");

    requestWith(vm, "404");
    assert.equal(vm.calls.count({ fn: "define_metric" }), 4, "a new tuple: its four families");
    assert.equal(vm.metricValue("istio_requests_total", { response_code: "404" }), 1n);
    assert.equal(vm.metricValue("istio_requests_total", { response_code: "200" }), 21n);
  });

  test("names carry all 25 labels in Istio's encoding", () => {
    const vm = serverSidecar({ config: TRACING_OFF });
    requestWith(vm, "200");
    const [m] = vm.metricsNamed("istio_requests_total");
    assert.equal(Object.keys(m.labels).length, 25);
    assert.match(m.encoded, /^reporter=\.=destination;\.;source_workload=\.=unknown;\.;.*;\.;istio_requests_total$/);
    assert.equal(m.type, "counter");
  });

  test("past max_series, new tuples go to one overflow series, counted", () => {
    const vm = serverSidecar({ config: { ...TRACING_OFF, max_series: 2 } });
    for (const status of ["200", "201", "202", "203", "204", "202"]) requestWith(vm, status);
    assert.equal(vm.metricValue("istio_requests_total", { response_code: "200" }), 1n);
    assert.equal(vm.metricValue("istio_requests_total", { response_code: "201" }), 1n);
    const overflow = vm.metricsNamed("istio_requests_total", { reporter: "overflow", response_code: "overflow" });
    assert.equal(overflow.length, 1, "one overflow series, defined once");
    assert.equal(overflow[0].value, 4n);
    assert.equal(vm.metricValue("mesh_telemetry_series_overflow_total"), 4n);
    assert.equal(vm.metricsNamed("istio_requests_total").length, 3);
  });
});
