// The VM's heap stays flat across thousands of requests (the minimal runtime collects every
// 128 streams) and counts stay exact across collections.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { startUpstream, type Upstream } from "../harness/envoy.ts";
import { startSidecar, type Sidecar } from "../harness/sidecars.ts";
import { parsePrometheus, select } from "../harness/prometheus.ts";

let app: Upstream;
let server: Sidecar;
let client: Sidecar;

before(async () => {
  app = await startUpstream();
  server = await startSidecar({ workload: { workload: "reviews-v1", namespace: "default", app: "reviews", version: "v1" }, appPort: app.port });
  client = await startSidecar({
    workload: { workload: "productpage-v1", namespace: "default", app: "productpage", version: "v1" },
    outbound: [{ service: { name: "reviews", namespace: "default" }, endpoints: [{ port: server.inboundPort }] }],
  });
});

after(async () => {
  await client?.envoy.stop();
  await server?.envoy.stop();
  await app?.close();
});

async function burst(port: number, n: number, concurrency = 8): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      await new Promise<void>((ok, fail) => {
        http.get({ host: "127.0.0.1", port, path: next % 10 === 0 ? "/status/500" : "/", agent }, (res) => {
          res.resume();
          res.on("end", ok);
        }).on("error", fail);
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
}

async function heap(sidecar: Sidecar): Promise<number> {
  const g = select(parsePrometheus(await sidecar.envoy.prometheus()), "mesh_telemetry_vm_heap_bytes");
  assert.ok(g.length >= 1, "heap gauge exported");
  return Math.max(...g.map((s) => s.value));
}

test("heap flat within one page after warm-up, and exact counts across collections", async () => {
  await burst(client.outboundPorts.reviews, 1000);
  const warm = await heap(client);
  await burst(client.outboundPorts.reviews, 4000);
  const after = await heap(client);
  assert.ok(after - warm <= 65536, `VM heap grew from ${warm} to ${after} bytes`);
  for (const [sidecar, reporter] of [[client, "source"], [server, "destination"]] as const) {
    const samples = parsePrometheus(await sidecar.envoy.prometheus());
    const ok = select(samples, "istio_requests_total", { reporter, response_code: "200", source_workload: "productpage-v1" });
    const err = select(samples, "istio_requests_total", { reporter, response_code: "500", source_workload: "productpage-v1" });
    assert.equal(ok[0].value + err[0].value, 5000, reporter);
    assert.equal(err[0].value, 500, reporter);
  }
});
