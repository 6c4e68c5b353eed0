// TCP metrics through Envoy's tcp_proxy with the plugin as a network filter: byte counters
// equal the bytes moved each way (within one reporting period while open, exactly after
// close), opened/closed counts, labels on both reporters, and flat memory over many
// short connections.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { eventually, freePort, sleep, startEnvoy, tcpListener, wasmNetworkFilter, type Envoy } from "../harness/envoy.ts";
import { originateMtls, serviceCluster, sidecarNode, strictMtls } from "../harness/sidecars.ts";
import { parsePrometheus, select, sum, type Sample } from "../harness/prometheus.ts";
import { issueWorkloadCert, throwawayCa } from "../harness/ca.ts";

const mongo = { workload: "mongodb-v1", namespace: "db", app: "mongodb", version: "v1" };
const client = { workload: "ratings-v2", namespace: "bookinfo", app: "ratings", version: "v2" };
let backend: net.Server;
let backendPort: number;
let server: Envoy;
let clientProxy: Envoy;
let inboundPort: number;
let outboundPort: number;
// A second path over mutual TLS, whose handshake a stopped server sidecar can hold up.
let mtlsInboundPort: number;
let mtlsOutboundPort: number;

// The backend answers every chunk with twice as many bytes, so "sent" and "received" differ.
before(async () => {
  backend = net.createServer((socket) => {
    socket.on("data", (chunk) => socket.write(Buffer.concat([chunk, chunk])));
    socket.on("error", () => {});
  });
  await new Promise<void>((ok) => backend.listen(0, "127.0.0.1", ok));
  backendPort = (backend.address() as net.AddressInfo).port;
  inboundPort = await freePort();
  outboundPort = await freePort();
  mtlsInboundPort = await freePort();
  mtlsOutboundPort = await freePort();
  const plugin = wasmNetworkFilter({ config: { tcp_reporting_duration: "500ms" } });
  const ca = throwawayCa();
  const mongodbCert = issueWorkloadCert(ca, { namespace: "db", serviceAccount: "mongodb" });
  const ratingsCert = issueWorkloadCert(ca, { namespace: "bookinfo", serviceAccount: "ratings" });
  const inboundCluster = "inbound|27017||";
  const outboundCluster = "outbound|27017||mongodb.db.svc.cluster.local";
  server = await startEnvoy({
    name: "mongodb",
    node: sidecarNode(mongo),
    listeners: [
      tcpListener({ name: "inbound", port: inboundPort, direction: "INBOUND", cluster: inboundCluster, filters: [plugin] }),
      strictMtls(tcpListener({ name: "inbound-mtls", port: mtlsInboundPort, direction: "INBOUND", cluster: inboundCluster, filters: [plugin] }), mongodbCert, "tcp"),
    ],
    clusters: [serviceCluster(inboundCluster, { name: "mongodb", namespace: "db" }, [{ port: backendPort }])],
  });
  clientProxy = await startEnvoy({
    name: "ratings",
    node: sidecarNode(client),
    listeners: [
      tcpListener({ name: "outbound", port: outboundPort, direction: "OUTBOUND", cluster: outboundCluster, filters: [plugin] }),
      tcpListener({ name: "outbound-mtls", port: mtlsOutboundPort, direction: "OUTBOUND", cluster: `${outboundCluster}-mtls`, filters: [plugin] }),
    ],
    clusters: [
      serviceCluster(outboundCluster, { name: "mongodb", namespace: "db" }, [{ port: inboundPort, workload: mongo }]),
      originateMtls(
        serviceCluster(`${outboundCluster}-mtls`, { name: "mongodb", namespace: "db" }, [{ port: mtlsInboundPort, workload: mongo }]),
        ratingsCert, { service: { name: "mongodb", namespace: "db" }, port: 27017, protocol: "tcp" },
      ),
    ],
  });
});

after(async () => {
  await clientProxy?.stop();
  await server?.stop();
  await new Promise<void>((ok) => backend.close(() => ok()));
});

/** Opens a connection through `port`, sends `chunks` of `size` bytes (one per `gapMs`), reads all answers. */
async function converse(port: number, chunks: number, size: number, gapMs = 0, keepOpen = false): Promise<net.Socket> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((ok, fail) => socket.once("connect", ok).once("error", fail));
  let received = 0;
  socket.on("data", (d) => (received += d.length));
  for (let i = 0; i < chunks; i++) {
    socket.write(Buffer.alloc(size, 97));
    if (gapMs) await sleep(gapMs);
  }
  await eventually("all echoed bytes", async () => (received >= 2 * chunks * size ? true : undefined));
  if (!keepOpen) {
    socket.end();
    await new Promise((ok) => socket.once("close", ok));
  }
  return socket;
}

async function tcpSamples(envoy: Envoy): Promise<Sample[]> {
  return parsePrometheus(await envoy.prometheus());
}

function value(samples: Sample[], name: string, match: Record<string, string>): number {
  return sum(select(samples, name, match));
}

test("a short connection: exact bytes each way, one open and one close, labels on both reporters", async () => {
  await converse(outboundPort, 4, 250);
  await eventually("close reported on both sides", async () => {
    const c = await tcpSamples(clientProxy);
    const s = await tcpSamples(server);
    return value(c, "istio_tcp_connections_closed_total", {}) === 1 && value(s, "istio_tcp_connections_closed_total", {}) === 1 ? true : undefined;
  });
  const c = await tcpSamples(clientProxy);
  const src = select(c, "istio_tcp_received_bytes_total", { reporter: "source" });
  assert.equal(src.length, 1);
  assert.equal(src[0].value, 1000);
  assert.equal(value(c, "istio_tcp_sent_bytes_total", { reporter: "source" }), 2000);
  assert.equal(value(c, "istio_tcp_connections_opened_total", { reporter: "source" }), 1);
  const labels = src[0].labels;
  assert.equal(Object.keys(labels).length, 23, "the HTTP set without response_code and grpc_response_status");
  assert.equal(labels.request_protocol, "tcp");
  assert.equal(labels.source_workload, "ratings-v2");
  assert.equal(labels.destination_workload, "mongodb-v1", "from the endpoint's istio.workload label");
  assert.equal(labels.destination_service, "mongodb.db.svc.cluster.local");
  assert.equal(labels.response_flags, "-");
  assert.equal(labels.connection_security_policy, "unknown");

  const s = await tcpSamples(server);
  const dst = select(s, "istio_tcp_received_bytes_total", { reporter: "destination" });
  assert.equal(dst[0].value, 1000);
  assert.equal(value(s, "istio_tcp_sent_bytes_total", { reporter: "destination" }), 2000);
  assert.equal(dst[0].labels.destination_workload, "mongodb-v1");
  assert.equal(dst[0].labels.source_workload, "unknown", "no TCP metadata exchange in Wasm");
  assert.equal(dst[0].labels.connection_security_policy, "none");
});

test("a long-lived connection reports while open (within one period) and exactly after close", async () => {
  const before = value(await tcpSamples(clientProxy), "istio_tcp_received_bytes_total", { reporter: "source" });
  // About 2.5 s of traffic: 10 chunks of 100 bytes, one every 250 ms, over five 500 ms periods.
  const socket = await converse(outboundPort, 10, 100, 250, true);
  await sleep(700); // one reporting period after the last chunk
  const open = await tcpSamples(clientProxy);
  assert.equal(value(open, "istio_tcp_received_bytes_total", { reporter: "source" }) - before, 1000, "reported before close");
  assert.equal(value(open, "istio_tcp_connections_opened_total", { reporter: "source" }), 2);
  assert.equal(value(open, "istio_tcp_connections_closed_total", { reporter: "source" }), 1, "still open");
  socket.write(Buffer.alloc(50, 98));
  await sleep(100);
  socket.end();
  await new Promise((ok) => socket.once("close", ok));
  await eventually("close reported", async () => (value(await tcpSamples(clientProxy), "istio_tcp_connections_closed_total", { reporter: "source" }) === 2 ? true : undefined));
  const closed = await tcpSamples(clientProxy);
  assert.equal(value(closed, "istio_tcp_received_bytes_total", { reporter: "source" }) - before, 1050);
  assert.equal(value(closed, "istio_tcp_sent_bytes_total", { reporter: "source" }), 2000 + 2100);
});

test("thousands of short connections leave the VM heap flat and the counts exact", async () => {
  const heap = async () => Math.max(...select(await tcpSamples(clientProxy), "mesh_telemetry_vm_heap_bytes").map((s) => s.value));
  const opened = async () => value(await tcpSamples(clientProxy), "istio_tcp_connections_closed_total", {});
  const batch = async (n: number) => {
    for (let i = 0; i < n; i += 20) await Promise.all(Array.from({ length: Math.min(20, n - i) }, () => converse(outboundPort, 1, 10)));
  };
  const start = await opened();
  await batch(500);
  const warm = await heap();
  await batch(1500);
  await eventually("every close reported", async () => ((await opened()) - start === 2000 ? true : undefined));
  const after = await heap();
  assert.ok(after - warm <= 65536, `heap grew from ${warm} to ${after}`);
});

test("labels wait for the upstream: a connection whose upstream is slow to come up is not counted as unknown", async () => {
  // Stop the server sidecar while a client connects over mTLS: the TLS handshake, and so
  // tcp_proxy's upstream connection, waits while several 500 ms report ticks pass.
  const labelsOf = async () => select(await tcpSamples(clientProxy), "istio_tcp_received_bytes_total", { reporter: "source" });
  const before = sum((await labelsOf()).filter((s) => s.labels.destination_workload === "mongodb-v1"));
  process.kill(server.pid, "SIGSTOP");
  let socket: net.Socket;
  try {
    socket = net.connect(mtlsOutboundPort, "127.0.0.1");
    await new Promise<void>((ok, fail) => socket.once("connect", ok).once("error", fail));
    socket.write(Buffer.alloc(100, 1));
    await sleep(1300);
  } finally {
    process.kill(server.pid, "SIGCONT");
  }
  let got = 0;
  await new Promise<void>((ok) => socket!.on("data", (d) => ((got += d.length) >= 200 ? ok() : undefined)));
  socket!.end();
  await new Promise((ok) => socket!.once("close", ok));
  await eventually("the connection reported", async () => {
    const total = sum(await labelsOf());
    return total - before >= 100 ? true : undefined;
  });
  const samples = await labelsOf();
  assert.deepEqual(samples.filter((s) => s.labels.destination_workload === "unknown").map((s) => s.value), [], "no bytes under unknown labels");
  assert.equal(sum(samples.filter((s) => s.labels.destination_workload === "mongodb-v1")) - before, 100);
});
