// The benchmark's processes, built from the one harness (tests/harness): an upstream Envoy that
// answers with `direct_response` (1 KiB body) and doubles as a Zipkin blackhole, and per
// configuration a pair of Istio-shaped sidecars (tests/harness/sidecars.ts), each an Envoy with
// one worker:
//
//   load generator -> client sidecar (outbound listener, reporter=source)
//                  -> server sidecar (inbound listener, reporter=destination)
//                  -> upstream Envoy (direct_response)
//
// The pair is what Istio calls "both" in its benchmarks: the client sidecar injects the
// metadata-exchange headers, the server sidecar decodes them and answers with its own, which the
// client decodes, so every one of the 25 labels is filled from a real peer on both sides.
// With `mtls`, the hop between the sidecars is Istio's mutual TLS, as in Istio's own benchmark:
// the client's cluster originates it (SNI, ALPN istio-http/1.1, SPIFFE SAN check) and the
// server's chain, selected by tls_inspector on transport and ALPN, terminates it requiring a
// client certificate; certificates from the mesh CA (tests/harness/ca.ts), made once per run.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { freePort, renderTemplate, startEnvoy, staticCluster, type Envoy, type WasmFilterOptions } from "../tests/harness/envoy.ts";
import { sidecarConfig, type ProxyCerts, type SidecarConfig, type SidecarOptions } from "../tests/harness/sidecars.ts";
import { CLIENT, SERVER, SERVICE } from "../tests/harness/sidecar-vms.ts";
import { createMeshCa, issueWorkloadCert, spiffeId } from "../tests/harness/ca.ts";

export { CLIENT, SERVER, SERVICE };
export const RESPONSE_BYTES = 1024;
const ZIPKIN_CLUSTER = "zipkin";

/** What a configuration puts in both sidecars. */
export interface Filters {
  /** none: bare Envoy; empty: the empty AssemblyScript filter; plugin: build/plugin.wasm. */
  wasm: "none" | "empty" | "plugin";
  /** Plugin configuration for the client (outbound) and server (inbound) sidecar. */
  clientConfig?: unknown;
  serverConfig?: unknown;
  /** Root ids (Istio's pluginName) of the client and server plugin; "" by default. */
  clientRootId?: string;
  serverRootId?: string;
  /** Another plugin module than ModulePaths.plugin (a candidate build of a change). */
  pluginPath?: string;
  /** Envoy's native Zipkin tracer in both HTTP connection managers, at this sampling %. */
  nativeZipkinPercent?: number;
  /** Istio's mutual TLS between the two sidecars (certificates from pairCertificates). */
  mtls?: PairCertificates;
}

export interface PairCertificates {
  client: ProxyCerts;
  server: ProxyCerts;
}

const CLIENT_SA = "bookinfo-productpage";
const SERVER_SA = "bookinfo-reviews";

/** A mesh CA and the two sidecars' SPIFFE certificates, in `dir`. */
export function pairCertificates(dir: string): PairCertificates {
  const ca = createMeshCa(join(dir, "ca"));
  const client = issueWorkloadCert(ca, { namespace: CLIENT.namespace, serviceAccount: CLIENT_SA, dir: join(dir, "client") });
  const server = issueWorkloadCert(ca, { namespace: SERVER.namespace, serviceAccount: SERVER_SA, dir: join(dir, "server") });
  return { client, server };
}

export interface ModulePaths {
  plugin: string;
  empty: string;
}

/** CPU placement: the sidecars under test on one core, everything else on another. */
export interface Placement {
  meshCpu: number | null;
  loadCpu: number | null;
}

export function placement(enabled: boolean, cores: number): Placement {
  if (!enabled || cores < 2) return { meshCpu: null, loadCpu: null };
  return { meshCpu: cores - 1, loadCpu: 0 };
}

/** Pins every thread of a running process (new threads inherit it). */
export function pin(pid: number, cpu: number | null): void {
  if (cpu === null) return;
  const r = spawnSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`taskset ${pid}: ${r.stderr}`);
}

/** Lets every thread of a process run on any core again. */
export function unpin(pid: number, cores: number): void {
  spawnSync("taskset", ["-a", "-p", "-c", `0-${cores - 1}`, String(pid)], { encoding: "utf8" });
}

/** A command line run on the load core. */
export function onCpu(cpu: number | null, cmd: string, args: string[]): [string, string[]] {
  return cpu === null ? [cmd, args] : ["taskset", ["-c", String(cpu), cmd, ...args]];
}

export interface Upstream {
  envoy: Envoy;
  port: number;
  collectorPort: number;
}

export async function startUpstreamEnvoy(where: Placement): Promise<Upstream> {
  const port = await freePort();
  const collectorPort = await freePort();
  const envoy = await startEnvoy({
    name: "bench-upstream",
    listeners: [
      renderTemplate("bench-direct-response.yaml", { NAME: "app", PORT: port, STATUS: 200, BODY: "x".repeat(RESPONSE_BYTES) }),
      renderTemplate("bench-direct-response.yaml", { NAME: "collector", PORT: collectorPort, STATUS: 202, BODY: "" }),
    ],
    clusters: [],
    concurrency: 1,
    flushOnAdmin: false,
  });
  pin(envoy.pid, where.loadCpu);
  return { envoy, port, collectorPort };
}

export interface Pair {
  client: Envoy;
  server: Envoy;
  /** The client sidecar's outbound listener: where the load generator sends. */
  port: number;
  stop(): Promise<void>;
}

function zipkinTracing(percent: number): any {
  return {
    random_sampling: { value: percent },
    provider: {
      name: "envoy.tracers.zipkin",
      typed_config: {
        "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
        collector_cluster: ZIPKIN_CLUSTER,
        collector_endpoint: "/api/v2/spans",
        collector_endpoint_version: "HTTP_JSON",
      },
    },
  };
}

/** The wasm filter of one side of the pair; null for bare Envoy. */
function pluginFor(filters: Filters, mod: ModulePaths, config: unknown, rootId: string): WasmFilterOptions | null {
  if (filters.wasm === "none") return null;
  const empty = filters.wasm === "empty";
  return {
    wasmPath: empty ? mod.empty : (filters.pluginPath ?? mod.plugin),
    vmId: empty ? "bench-empty" : "mesh-telemetry",
    pluginName: empty ? "bench-empty" : "mesh-telemetry",
    config: config ?? {},
    rootId,
    // As deploy/'s WasmPlugins: a telemetry plugin fails open.
    failurePolicy: "FAIL_OPEN",
  };
}

/** Starts one side: the harness's sidecar, Envoy's native tracer added when asked for, one worker. */
async function startSide(tag: string, side: "server" | "client", filters: Filters, opts: SidecarOptions): Promise<{ envoy: Envoy; config: SidecarConfig }> {
  const config = await sidecarConfig(opts);
  if (filters.nativeZipkinPercent !== undefined) {
    for (const l of config.listeners) {
      for (const chain of l.filter_chains) chain.filters[0].typed_config.tracing = zipkinTracing(filters.nativeZipkinPercent);
    }
  }
  const envoy = await startEnvoy({ name: `bench-${tag}-${side}`, node: config.node, listeners: config.listeners, clusters: config.clusters, concurrency: 1, flushOnAdmin: true });
  return { envoy, config };
}

/** Starts the server sidecar, then the client sidecar pointing at it, both pinned. */
export async function startPair(tag: string, filters: Filters, mod: ModulePaths, upstream: Upstream, where: Placement): Promise<Pair> {
  const collector = staticCluster(ZIPKIN_CLUSTER, upstream.collectorPort);
  // With certificates the server's inbound listener is PERMISSIVE, istiod's default: an mTLS
  // chain and a plaintext one; the client always originates mTLS then, so only the mTLS chain
  // carries traffic.
  const serverOpts: SidecarOptions = {
    workload: SERVER, appPort: upstream.port, servicePort: 9080, plugin: pluginFor(filters, mod, filters.serverConfig, filters.serverRootId ?? ""),
    certs: filters.mtls?.server, clusters: [collector],
  };
  const { envoy: server, config: serverConfig } = await startSide(tag, "server", filters, serverOpts);
  const clientOpts: SidecarOptions = {
    workload: CLIENT,
    outbound: [{
      service: SERVICE, servicePort: 9080, endpoints: [{ port: serverConfig.inboundPort, workload: SERVER }],
      mtls: filters.mtls !== undefined, serverSans: [spiffeId(SERVER.namespace, SERVER_SA)],
    }],
    plugin: pluginFor(filters, mod, filters.clientConfig, filters.clientRootId ?? ""),
    certs: filters.mtls?.client, clusters: [collector],
  };
  let client: Envoy;
  let port: number;
  try {
    const side = await startSide(tag, "client", filters, clientOpts);
    client = side.envoy;
    port = side.config.outboundPorts[SERVICE.name];
  } catch (err) {
    await server.stop();
    throw err;
  }
  pin(server.pid, where.meshCpu);
  pin(client.pid, where.meshCpu);
  return {
    client,
    server,
    port,
    async stop() {
      await client.stop();
      await server.stop();
    },
  };
}
