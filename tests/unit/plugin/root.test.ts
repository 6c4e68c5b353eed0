// The root context (assembly/plugin/root.ts): configure (refusals name the field, the local
// identity and gauges, the timer).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ProxyWasmVm } from "../../harness/proxywasm.ts";
import { clientRequest, nodeOf, SERVER, serverSidecar, TRACING_OFF } from "../../harness/sidecar-vms.ts";

const STATS_ONLY = { reporter: "UNSPECIFIED", ...TRACING_OFF };

describe("configure", () => {
  const refused: Array<[string, unknown, RegExp]> = [
    ["wrong type", { reporter: ["source"] }, /^configuration refused: field 'reporter' \(offset 12\): expected a string, got array$/],
    ["unknown field", { reportr: "source" }, /^configuration refused: field 'reportr' \(offset 11\): unknown field$/],
    ["bad trust", { peer_metadata_trust: "sometimes" }, /^configuration refused: field 'peer_metadata_trust' .*expected always, mtls_only or never/],
    ["malformed JSON", '{"reporter": "source"', /^configuration refused: malformed JSON at offset 21\b/],
  ];
  for (const [name, config, line] of refused) {
    test(`${name}: refused, with one error line naming the field`, () => {
      const vm = new ProxyWasmVm({ ...nodeOf(SERVER), config, configure: false });
      assert.equal(vm.configure(), false);
      const errors = vm.logs.filter((l) => l.level >= 4);
      assert.equal(errors.length, 1, JSON.stringify(vm.logs));
      assert.match(errors[0].message, line);
      assert.equal(vm.metrics.size, 0, "nothing half-applied: no metric defined");
    });
  }

  test("accepted: logs the workload, defines the plugin's own metrics, sets the timer", () => {
    const vm = serverSidecar({ config: STATS_ONLY });
    assert.equal(vm.configured, true);
    assert.ok(vm.logs.some((l) => l.level === 2 && l.message === `configured: workload reviews-v1.default, node ${nodeOf(SERVER).nodeId}`), JSON.stringify(vm.logs));
    const build = [...vm.metrics.values()].filter((m) => m.encoded.endsWith(";.istio_build"));
    assert.equal(build.length, 1);
    // Istio's encoding, taken apart by its own bootstrap regexes: component.proxy.tag.<v>;.istio_build
    assert.equal(build[0].encoded, "component.proxy.tag.1.28.0;.istio_build");
    assert.equal(build[0].type, "gauge");
    assert.equal(build[0].value, 1n);
    assert.ok(vm.metricValue("mesh_telemetry_vm_heap_bytes") > 0n);
    assert.equal(vm.tickPeriodMs, 5000, "tcp_reporting_duration's default");
  });

  test("a reconfigure with a bad config is refused and the previous one keeps serving", () => {
    const vm = serverSidecar({ config: STATS_ONLY });
    assert.equal(vm.configure({ max_series: "many" }), false);
    vm.request({ headers: clientRequest() });
    assert.equal(vm.metricValue("istio_requests_total", { reporter: "destination" }), 1n);
  });
});
