// A flood of distinct label values stays within max_series: a custom dimension read from a
// request header (`metrics: [{dimensions: {user: "request.headers['x-user']"}}]`, with the
// `user` stat tag as Istio's extraStatTags) gets thousands of distinct values; the plugin
// defines at most max_series label tuples, sends the rest to one overflow series, counts every
// request exactly once, counts the overflow (mesh_telemetry_series_overflow_total), and neither
// the VM heap (mesh_telemetry_vm_heap_bytes) nor Envoy's stat memory grows once the limit is
// reached. A flood of distinct peer ids stays within the peer cache (500 entries) the same way.
// (cardinality.test.ts covers the basic case with response codes.)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { freePort, httpListener, startEnvoy, staticCluster, wasmHttpFilter, type Envoy, type Upstream } from "../harness/envoy.ts";
import { parsePrometheus, select, sum, type Sample } from "../harness/prometheus.ts";
import { peerMetadataBase64, raiseHeaderLimits, rawRequest, startLargeUpstream } from "../fixtures/hostile.ts";

const MAX_SERIES = 200;
let app: Upstream;
let envoy: Envoy;
let port: number;
let peerPort: number;

before(async () => {
  // Takes the 50 KiB ids of the last test (Node's own server refuses headers over 16 KiB).
  app = await startLargeUpstream();
  port = await freePort();
  peerPort = await freePort();
  envoy = await startEnvoy({
    name: "flood",
    extraStatTags: ["user"],
    listeners: [
      httpListener({
        name: "in",
        port,
        direction: "INBOUND",
        cluster: "app",
        filters: [wasmHttpFilter({ config: { max_series: MAX_SERIES, metrics: [{ dimensions: { user: "request.headers['x-user']" } }] }, vmId: "flood" })],
      }),
      httpListener({ name: "peers", port: peerPort, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ vmId: "peers", pluginName: "peers" })] }),
    ],
    clusters: [staticCluster("app", app.port)],
  });
});

after(async () => {
  await envoy?.stop();
  await app?.close();
});

/** `n` requests on keep-alive connections, `headers(i)` for the i-th. */
async function flood(target: number, from: number, n: number, headers: (i: number) => Record<string, string>, concurrency = 8): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let next = from;
  const end = from + n;
  const worker = async () => {
    while (next < end) {
      const i = next++;
      await new Promise<void>((ok, fail) => {
        http.get({ host: "127.0.0.1", port: target, path: "/", agent, headers: headers(i) }, (res) => {
          assert.equal(res.statusCode, 200);
          res.resume();
          res.on("end", ok);
        }).on("error", fail);
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
}

async function samples(): Promise<Sample[]> {
  return parsePrometheus(await envoy.prometheus());
}

/** The VM heap gauge of one plugin (both VMs export it; the stat name carries no VM id). */
function heap(s: Sample[]): number {
  return Math.max(...select(s, "mesh_telemetry_vm_heap_bytes").map((x) => x.value));
}

test("4000 distinct header values: at most max_series series, the rest on the overflow series, counts exact, memory flat", async () => {
  // Warm-up: the limit is reached in the first 200 requests; Envoy allocates its histogram
  // buffers for the 200 series on the flushes that follow.
  await flood(port, 0, 2000, (i) => ({ "x-user": `user-${i}` }));
  // Envoy allocates histogram merge buffers on the first flushes (one per admin read here).
  for (let i = 0; i < 2; i++) await samples();
  const warm = await samples();
  const warmHeap = heap(warm);
  const warmEnvoy = sum(select(warm, "envoy_server_memory_allocated"));
  await flood(port, 2000, 2000, (i) => ({ "x-user": `user-${i}` }));
  const s = await samples();

  const requests = select(s, "istio_requests_total", { reporter: "destination" });
  const users = new Set(requests.map((x) => x.labels.user));
  assert.equal(users.size, MAX_SERIES, "distinct user values kept");
  assert.equal(requests.length, MAX_SERIES);
  const overflow = select(s, "istio_requests_total", { reporter: "overflow" });
  assert.equal(overflow.length, 1, "one overflow series");
  assert.equal(overflow[0].value, 4000 - MAX_SERIES);
  assert.equal(sum(requests) + overflow[0].value, 4000, "every request counted once");
  assert.equal(sum(select(s, "mesh_telemetry_series_overflow_total")), 4000 - MAX_SERIES);
  // Every family (counter and histograms) is bounded the same way.
  for (const family of ["istio_request_duration_milliseconds_count", "istio_request_bytes_count", "istio_response_bytes_count"]) {
    assert.ok(select(s, family).length <= MAX_SERIES + 1, family);
  }
  const heapGrowth = heap(s) - warmHeap;
  assert.ok(heapGrowth <= 65536, `VM heap grew by ${heapGrowth} bytes past the limit`);
  const envoyGrowth = sum(select(s, "envoy_server_memory_allocated")) - warmEnvoy;
  assert.ok(envoyGrowth < 2 * 1024 * 1024, `Envoy's allocated memory grew by ${envoyGrowth} bytes past the limit`);
});

test("2000 distinct peer ids (1 KiB each) stay within the peer cache: heap flat, each peer's labels right", async () => {
  const metadata = peerMetadataBase64("flood-client");
  const id = (i: number) => `sidecar~10.${i >> 8}.${i & 255}.1~flood-client-${i}.default~default.svc.cluster.local~${"p".repeat(960)}`;
  await flood(peerPort, 0, 1000, (i) => ({ "x-envoy-peer-metadata": metadata, "x-envoy-peer-metadata-id": id(i) }));
  const warmHeap = heap(await samples());
  await flood(peerPort, 1000, 1000, (i) => ({ "x-envoy-peer-metadata": metadata, "x-envoy-peer-metadata-id": id(i) }));
  const s = await samples();
  const peers = select(s, "istio_requests_total", { reporter: "destination", source_workload: "flood-client" });
  assert.equal(sum(peers), 2000);
  const heapGrowth = heap(s) - warmHeap;
  assert.ok(heapGrowth <= 1024 * 1024, `VM heap grew by ${heapGrowth} bytes with the cache full`);
});

test("distinct 50 KiB peer ids do not fill the VM heap (the peer cache is bounded in bytes, not only in entries)", async () => {
  const p = await freePort();
  const e = await startEnvoy({
    name: "flood-ids",
    listeners: [raiseHeaderLimits(httpListener({ name: "in", port: p, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({})] }))],
    clusters: [staticCluster("app", app.port)],
  });
  try {
    const metadata = peerMetadataBase64("flood-client");
    const heapOf = async () => heap(parsePrometheus(await e.prometheus()));
    const send = (i: number) => rawRequest(p, [["x-envoy-peer-metadata", metadata], ["x-envoy-peer-metadata-id", String(i).padEnd(50 * 1024, "i")]]);
    for (let i = 0; i < 128; i++) assert.equal(await send(i), 200);
    const warm = await heapOf();
    for (let i = 128; i < 700; i++) assert.equal(await send(i), 200);
    const growth = (await heapOf()) - warm;
    assert.ok(growth <= 4 * 1024 * 1024, `VM heap grew by ${(growth / 1048576).toFixed(0)} MiB`);
  } finally {
    await e.stop();
  }
});
