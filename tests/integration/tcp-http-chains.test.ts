// TCP metrics only where Istio reports them (docs/tcp.md, "HTTP filter chains"). istiod puts a
// NETWORK WasmPlugin in front of the HTTP connection manager on HTTP filter chains as well as in
// front of tcp_proxy on TCP chains (pilot/pkg/networking/core listener.go buildListenerFromEntry,
// listener_inbound.go buildInboundNetworkFiltersForHTTP); Istio's own telemetry reports
// istio_tcp_* on TCP chains only. Here one real Envoy has the chains istiod builds for a sidecar,
// with the filters deploy/'s WasmPlugins become (as istiod writes them: no vm_id, the same
// module), and the test shows: HTTP connections, kept alive or not, yield no istio_tcp_* series;
// a TCP connection still does, with exact bytes. A second Envoy with the network plugin alone
// (no HTTP plugin in its VM) does count the HTTP connections, so the first result is the
// plugin's doing and not the test's.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  eventually, freePort, httpListener, PLUGIN_WASM, ROOT, startEnvoy, startUpstream, tcpListener, type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { serviceCluster, sidecarNode } from "../harness/sidecars.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";
import { parseWasmPlugins, wasmPluginConfig, type WasmPlugin } from "../harness/wasmplugin.ts";
import { renderText } from "../harness/tools.ts";

const reviews = { workload: "reviews-v1", namespace: "bookinfo", app: "reviews", version: "v1" };
const ratings = { workload: "ratings-v1", namespace: "bookinfo", app: "ratings", version: "v1" };
const IMAGE = { ref: "registry.example.com/mesh-telemetry-wasm:0.1.0", digest: `sha256:${"0".repeat(64)}` };

/** deploy/<file> as istiod would turn it into filters, the module already fetched (build/plugin.wasm). */
function deployedFilters(file: string): Array<{ plugin: WasmPlugin; filter: any }> {
  const text = renderText(readFileSync(join(ROOT, "deploy", file), "utf8"), IMAGE, file);
  return parseWasmPlugins(text, file).map((plugin) => ({
    plugin,
    filter: {
      name: `${plugin.namespace}.${plugin.name}`,
      typed_config: {
        "@type": plugin.spec.type === "NETWORK"
          ? "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm"
          : "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        config: wasmPluginConfig(plugin, PLUGIN_WASM),
      },
    },
  }));
}

const [client, server] = deployedFilters("wasmplugin-http.yaml").map((x) => x.filter);
const [network] = deployedFilters("wasmplugin-tcp.yaml").map((x) => x.filter);

let app: Upstream;
let backend: net.Server;

before(async () => {
  app = await startUpstream();
  backend = net.createServer((s) => s.on("data", (d) => s.write(d)).on("error", () => {}));
  await new Promise<void>((ok) => backend.listen(0, "127.0.0.1", ok));
});

after(async () => {
  await app?.close();
  backend?.close();
});

interface Sidecar {
  envoy: Envoy;
  outboundHttp: number;
  inboundHttp: number;
  inboundTcp: number;
}

/**
 * A sidecar's chains as istiod builds them: outbound 0.0.0.0_9080 and inbound 0.0.0.0_9080 are
 * [network STATS plugin, HCM [HTTP plugin, router]]; inbound 0.0.0.0_27017 is [network STATS
 * plugin, tcp_proxy]. (virtualInbound's chains live on one listener behind original_dst; here
 * each chain has its own port, which changes nothing inside a chain.)
 */
async function sidecar(name: string, withHttpPlugins: boolean): Promise<Sidecar> {
  const [outboundHttp, inboundHttp, inboundTcp] = [await freePort(), await freePort(), await freePort()];
  const hcmChain = (l: any) => {
    l.filter_chains[0].filters.unshift(network);
    return l;
  };
  const envoy = await startEnvoy({
    name,
    node: sidecarNode(reviews),
    listeners: [
      hcmChain(httpListener({ name: "0.0.0.0_9080", port: outboundHttp, direction: "OUTBOUND", cluster: "outbound|9080||ratings.bookinfo.svc.cluster.local", filters: withHttpPlugins ? [client] : [] })),
      hcmChain(httpListener({ name: "virtualInbound", port: inboundHttp, direction: "INBOUND", cluster: "inbound|9080||", filters: withHttpPlugins ? [server] : [] })),
      tcpListener({ name: "virtualInbound_tcp", port: inboundTcp, direction: "INBOUND", cluster: "inbound|27017||", filters: [network] }),
    ],
    clusters: [
      serviceCluster("outbound|9080||ratings.bookinfo.svc.cluster.local", { name: "ratings", namespace: "bookinfo" }, [{ port: app.port, workload: ratings }]),
      serviceCluster("inbound|9080||", { name: "reviews", namespace: "bookinfo" }, [{ port: app.port }]),
      serviceCluster("inbound|27017||", { name: "reviews", namespace: "bookinfo" }, [{ port: (backend.address() as net.AddressInfo).port }]),
    ],
  });
  return { envoy, outboundHttp, inboundHttp, inboundTcp };
}

/** `requests` HTTP requests on one kept-alive connection, then the connection closed. */
async function keepAliveRequests(port: number, requests: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < requests; i++) {
      await new Promise<void>((ok, fail) => {
        http.get({ host: "127.0.0.1", port, path: `/r/${i}`, agent }, (res) => {
          res.resume();
          res.on("end", () => (res.statusCode === 200 ? ok() : fail(new Error(`HTTP ${res.statusCode}`))));
        }).on("error", fail);
      });
    }
  } finally {
    agent.destroy();
  }
}

/** One TCP connection: `payload` out, the echo back, closed. */
function tcpExchange(port: number, payload: string): Promise<string> {
  return new Promise((ok, fail) => {
    let got = "";
    const s = net.connect(port, "127.0.0.1", () => s.write(payload));
    s.on("data", (d) => {
      got += d;
      if (got.length >= payload.length) s.end();
    });
    s.on("close", () => ok(got));
    s.on("error", fail);
  });
}

async function drive(p: Sidecar): Promise<void> {
  await keepAliveRequests(p.outboundHttp, 5); // one connection, five requests
  await keepAliveRequests(p.outboundHttp, 1);
  await keepAliveRequests(p.inboundHttp, 3);
  assert.equal(await tcpExchange(p.inboundTcp, "hello mongo"), "hello mongo");
}

test("through istiod-shaped sidecar chains, HTTP connections yield no istio_tcp_* series; a TCP connection still does", async () => {
  const p = await sidecar("tcp-http-chains", true);
  try {
    await drive(p);
    const s = await eventually("the TCP connection's close reported", async () => {
      const samples = parsePrometheus(await p.envoy.prometheus());
      return sum(select(samples, "istio_tcp_connections_closed_total")) >= 1 ? samples : undefined;
    });
    // The HTTP plugins measured every request, both reporters.
    assert.equal(sum(select(s, "istio_requests_total", { reporter: "source" })), 6);
    assert.equal(sum(select(s, "istio_requests_total", { reporter: "destination" })), 3);
    // The TCP family: the one TCP connection and nothing else, exact bytes.
    const tcp = s.filter((x) => x.name.startsWith("istio_tcp_"));
    assert.deepEqual([...new Set(tcp.map((x) => `${x.labels.reporter} ${x.labels.request_protocol}`))], ["destination tcp"],
      "only the inbound TCP chain reports");
    assert.equal(sum(select(s, "istio_tcp_connections_opened_total")), 1);
    assert.equal(sum(select(s, "istio_tcp_connections_closed_total")), 1);
    assert.equal(sum(select(s, "istio_tcp_received_bytes_total")), "hello mongo".length);
    assert.equal(sum(select(s, "istio_tcp_sent_bytes_total")), "hello mongo".length);
  } finally {
    await p.envoy.stop();
  }
});

test("control: the same chains without the HTTP plugin in the VM count the HTTP connections as TCP", async () => {
  const p = await sidecar("tcp-http-chains-control", false);
  try {
    await drive(p);
    // 3 HTTP connections (2 outbound, 1 inbound) and the TCP one.
    const s = await eventually("four closes reported", async () => {
      const samples = parsePrometheus(await p.envoy.prometheus());
      return sum(select(samples, "istio_tcp_connections_closed_total")) >= 4 ? samples : undefined;
    });
    assert.equal(sum(select(s, "istio_tcp_connections_closed_total", { reporter: "source" })), 2);
    assert.equal(sum(select(s, "istio_tcp_connections_closed_total", { reporter: "destination" })), 2);
  } finally {
    await p.envoy.stop();
  }
});
