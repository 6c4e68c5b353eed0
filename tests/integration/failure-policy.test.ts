// What Envoy does when the Wasm module cannot load or its VM fails at run time, for each
// failure_policy, shown with the real plugin (load failures) and a test-only filter that traps
// on demand (tests/fixtures/trap-filter; the real plugin has no trap switch):
//
//   module fails to load (truncated .wasm, missing import): refused at configure time under
//     every policy: a static listener stops Envoy from starting (exit 1), an LDS update is
//     rejected and the listener keeps serving with its previous filter.
//   VM traps at run time: the request in flight is answered 503 under every policy, then
//     FAIL_OPEN    later requests are served without the filter (until the config changes);
//     FAIL_CLOSED  later requests are refused with 503;
//     FAIL_RELOAD  requests are refused with 503 during the reload backoff (1 s base), then a
//                  new VM serves them, and a second trap recovers the same way.
//   Envoy itself never crashes or restarts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  eventually, freePort, httpListener, httpRequest, sleep, staticCluster, startEnvoy, startUpstream, wasmHttpFilter,
  type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { missingImportWasm, trapFilterWasm, truncatedPluginWasm } from "../fixtures/build.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";

type Policy = "FAIL_OPEN" | "FAIL_CLOSED" | "FAIL_RELOAD";
let app: Upstream;
let trapWasm: string;

before(async () => {
  app = await startUpstream();
  trapWasm = trapFilterWasm();
});

after(async () => {
  await app?.close();
});

async function withEnvoy(policy: Policy, wasmPath: string | undefined, body: (envoy: Envoy, port: number) => Promise<void>): Promise<void> {
  const port = await freePort();
  const envoy = await startEnvoy({
    name: `policy-${policy.toLowerCase()}`,
    listeners: [httpListener({ name: "in", port, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ wasmPath, failurePolicy: policy })] })],
    clusters: [staticCluster("app", app.port)],
  });
  try {
    await body(envoy, port);
    assert.equal(envoy.exitCode, undefined, "Envoy still running");
    assert.equal((await envoy.admin("/ready")).trim(), "LIVE");
  } finally {
    await envoy.stop();
  }
}

/** One request: its status and the VM id the trap filter stamped upstream ("" if the filter did not run). */
async function call(port: number, trap?: string): Promise<{ status: number; vm: string }> {
  const seen = app.requests.length;
  const res = await httpRequest(`http://127.0.0.1:${port}/`, { headers: trap ? { "x-trap": trap } : {} });
  const upstream = app.requests.slice(seen).at(-1);
  return { status: res.status, vm: String(upstream?.headers["x-trap-filter-vm"] ?? "") };
}

for (const trap of ["unreachable", "abort"]) {
  test(`FAIL_OPEN, VM trap (${trap}): the trapping request fails, later ones are served without the filter`, async () => {
    await withEnvoy("FAIL_OPEN", trapWasm, async (_envoy, port) => {
      const first = await call(port);
      assert.equal(first.status, 200);
      assert.notEqual(first.vm, "", "the filter runs before the trap");
      assert.equal((await call(port, trap)).status, 503, "the request in flight when the VM fails");
      for (let i = 0; i < 5; i++) assert.deepEqual(await call(port), { status: 200, vm: "" }, "served, filter bypassed");
    });
  });

  test(`FAIL_CLOSED, VM trap (${trap}): every later request is refused with 503`, async () => {
    await withEnvoy("FAIL_CLOSED", trapWasm, async (_envoy, port) => {
      assert.equal((await call(port)).status, 200);
      assert.equal((await call(port, trap)).status, 503);
      for (let i = 0; i < 3; i++) assert.equal((await call(port)).status, 503);
      await sleep(1500);
      assert.equal((await call(port)).status, 503, "no reload under FAIL_CLOSED");
      assert.equal(app.requests.filter((r) => r.headers["x-trap"]).length, 0, "nothing reached the app past the failed filter");
    });
  });
}

test("FAIL_RELOAD, VM trap: 503 during the backoff, then a new VM serves; a second trap recovers too", async () => {
  await withEnvoy("FAIL_RELOAD", trapWasm, async (envoy, port) => {
    const first = await call(port);
    assert.equal(first.status, 200);
    let vm = first.vm;
    for (const trap of ["unreachable", "abort"]) {
      assert.equal((await call(port, trap)).status, 503);
      assert.equal((await call(port)).status, 503, "still in backoff right after the trap");
      const fresh = await eventually(`a reloaded VM after ${trap}`, async () => {
        const r = await call(port);
        return r.status === 200 ? r : undefined;
      }, 15000);
      assert.notEqual(fresh.vm, "", "the filter runs again");
      assert.notEqual(fresh.vm, vm, "in a new VM");
      vm = fresh.vm;
      for (let i = 0; i < 3; i++) assert.deepEqual(await call(port), { status: 200, vm });
    }
    const stats = parsePrometheus(await envoy.prometheus());
    assert.equal(sum(select(stats, "envoy_wasm_mesh_telemetry_vm_reload_success")), 2, "two reloads");
  });
});

test("the real plugin under FAIL_RELOAD loads, serves and counts as usual", async () => {
  await withEnvoy("FAIL_RELOAD", undefined, async (envoy, port) => {
    for (let i = 0; i < 5; i++) assert.equal((await httpRequest(`http://127.0.0.1:${port}/`)).status, 200);
    assert.equal(sum(select(parsePrometheus(await envoy.prometheus()), "istio_requests_total")), 5);
  });
});

const broken: Array<[string, () => string, RegExp]> = [
  ["a truncated module", () => truncatedPluginWasm(4096), /Failed to parse corrupted Wasm module|Failed to load Wasm code/],
  ["a module with an import Envoy lacks", () => missingImportWasm(), /missing import: env\.proxy_no_such_call/],
];

for (const [what, wasm, line] of broken) {
  test(`${what}: a static listener is refused under every policy (Envoy exits, nothing half-serves)`, async () => {
    for (const policy of ["FAIL_OPEN", "FAIL_CLOSED", "FAIL_RELOAD"] as const) {
      const port = await freePort();
      const envoy = await startEnvoy({
        name: "broken-module",
        allowFailure: true,
        listeners: [httpListener({ name: "in", port, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ wasmPath: wasm(), failurePolicy: policy })] })],
        clusters: [staticCluster("app", app.port)],
      });
      try {
        assert.equal(envoy.exitCode, 1, `${policy}: Envoy refuses the configuration`);
        assert.match(envoy.logs(), line);
        assert.match(envoy.logs(), /Plugin mesh-telemetry failed to load/);
      } finally {
        await envoy.stop();
      }
    }
  });
}

test("a broken module through LDS is rejected under every policy; the old listener keeps serving with the plugin", async () => {
  for (const policy of ["FAIL_OPEN", "FAIL_CLOSED", "FAIL_RELOAD"] as const) {
    const port = await freePort();
    const listener = (wasmPath?: string) =>
      httpListener({ name: "in", port, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ wasmPath, failurePolicy: policy })] });
    const envoy = await startEnvoy({ name: "broken-lds", dynamicListeners: true, listeners: [listener()], clusters: [staticCluster("app", app.port)] });
    try {
      for (const [, wasm] of broken) {
        assert.equal(await envoy.updateListeners([listener(wasm())]), "rejected", policy);
        for (let i = 0; i < 2; i++) assert.equal((await httpRequest(`http://127.0.0.1:${port}/`)).status, 200);
      }
      assert.equal(sum(select(parsePrometheus(await envoy.prometheus()), "istio_requests_total")), 4, `${policy}: the old plugin counted every request`);
      assert.equal(envoy.exitCode, undefined);
    } finally {
      await envoy.stop();
    }
  }
});
