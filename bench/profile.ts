// The hot-path profile: how many host calls the plugin makes per request, in which callback and
// on which key (the counting variant, bench/hostcalls.ts), and what one host call of each
// kind costs in this Envoy (the probe module, bench/empty-filter/probe.ts, priced by CPU per
// request with and without N calls).
import { eventually, freePort, httpListener, startEnvoy, wasmHttpFilter } from "../tests/harness/envoy.ts";
import { serviceCluster, sidecarNode } from "../tests/harness/sidecars.ts";
import { CLIENT, pin, SERVICE, startPair, type Filters, type Pair, type Placement, type Upstream } from "./topology.ts";
import { parseReports, perStream, type PerStream } from "./hostcalls.ts";
import { h2load, withCpuFine } from "./load.ts";
import { median, spread, type Spread } from "./stats.ts";

export interface SidecarCalls {
  /** Host calls per request, all kinds. */
  total: number;
  /** VM entries (callbacks) per request. */
  callbacks: number;
  /** Nanoseconds per request inside the VM, host calls included (counting variant: inflated by its own clock reads). */
  vm_ns: number;
  detail: PerStream;
}

export interface HostCallProfile {
  config: string;
  requests: number;
  client: SidecarCalls;
  server: SidecarCalls;
}

function summarize(p: PerStream): SidecarCalls {
  let total = 0;
  for (const [, [calls]] of Object.entries(p.counts)) total += calls;
  let callbacks = 0;
  let vm = 0;
  for (const [, [calls, ns]] of Object.entries(p.callbacks)) {
    callbacks += calls;
    vm += calls * ns;
  }
  return { total, callbacks, vm_ns: vm, detail: p };
}

/**
 * Runs `requests` requests one at a time (so the wall-clock timings are not stretched by queueing)
 * through a pair whose plugin is the counting variant, after a warm-up, and returns per-request
 * counts from the reports the variant logs every 1000 streams.
 */
export async function hostCallProfile(
  config: string,
  filters: Filters,
  countingWasm: string,
  upstream: Upstream,
  where: Placement,
  requests: number,
): Promise<HostCallProfile> {
  const pair = await startPair("hostcalls", filters, { plugin: countingWasm, empty: countingWasm }, upstream, where);
  try {
    await h2load({ port: pair.port, requests: 1000, connections: 1, http1: true, cpu: where.loadCpu });
    await h2load({ port: pair.port, requests, connections: 1, http1: true, cpu: where.loadCpu });
    // Envoy flushes its log file every few seconds: wait for the report of the last stream.
    const last = Math.floor((1000 + requests) / 1000) * 1000;
    const side = async (envoy: Pair["client"]): Promise<SidecarCalls> => {
      const reports = await eventually(`hostcalls report ${last} in ${envoy.name}'s log`, async () => {
        const r = parseReports(envoy.logs());
        return r.length >= 2 && r[r.length - 1].streams >= last ? r : undefined;
      }, 20000);
      return summarize(perStream(reports[0], reports[reports.length - 1]));
    };
    return { config, requests, client: await side(pair.client), server: await side(pair.server) };
  } finally {
    await pair.stop();
  }
}

export interface ProbeKind {
  id: string;
  label: string;
  /** probe configuration without the count: "<kind> {N} [argument]" */
  config: string;
}

export const PROBE_KINDS: ProbeKind[] = [
  { id: "clock", label: "get_current_time (bare crossing)", config: "clock {N}" },
  { id: "property_response_code", label: "get_property response.code", config: "property {N} response.code" },
  { id: "property_listener_direction", label: "get_property xds.listener_direction", config: "property {N} xds.listener_direction" },
  { id: "property_cluster_metadata", label: "get_property xds.cluster_metadata...services.0.name", config: "property {N} xds.cluster_metadata.filter_metadata.istio.services.0.name" },
  { id: "property_absent", label: "get_property (absent: upstream.uri_san_peer_certificate)", config: "property {N} upstream.uri_san_peer_certificate" },
  { id: "get_header", label: "get_header_map_value content-type", config: "header {N} content-type" },
  { id: "increment_metric", label: "increment_metric (counter)", config: "increment {N}" },
  { id: "record_metric", label: "record_metric (histogram)", config: "record {N}" },
  // The plugin's outbound log-time list (assembly/plugin/attributes.ts), against four reads.
  { id: "expr_log_list", label: "expr_evaluate of the outbound log list (4 attributes)", config: "expr {N} [request.total_size, response.total_size, response.flags, request.duration]" },
];

export interface ProbeResult {
  id: string;
  label: string;
  /** Microseconds of Envoy CPU per call: (CPU/request with N calls - with none) / N. */
  us_per_call: number;
  cpu_us_per_request: Spread;
}

export interface HostCallCosts {
  /** CPU per request of the probe Envoy: no filter, the empty filter with only the callbacks
   * telemetry needs, the empty filter with every SDK export (as the plugin has). */
  bare: Spread;
  empty_minimal_exports: Spread;
  empty: Spread;
  kinds: ProbeResult[];
}

/**
 * Prices one host call of each kind, and one VM entry: one Envoy with one listener per probe
 * (no filter; the empty filter with minimal exports; the probe module with `calls` calls of one
 * kind per request, or none), all measured interleaved `reps` times.
 */
export async function hostCallCosts(
  probeWasm: string,
  minimalWasm: string,
  upstream: Upstream,
  where: Placement,
  calls: number,
  requests: number,
  reps: number,
  progress: (line: string) => void,
): Promise<HostCallCosts> {
  const kinds = [
    { id: "bare", label: "no filter", config: "" },
    { id: "empty_minimal_exports", label: "empty filter, minimal exports", config: "" },
    { id: "none", label: "empty filter (probe, no calls)", config: "none 0" },
    ...PROBE_KINDS,
  ];
  const ports: number[] = [];
  const listeners: any[] = [];
  for (const k of kinds) {
    const port = await freePort();
    ports.push(port);
    const filters =
      k.id === "bare"
        ? []
        : k.id === "empty_minimal_exports"
          ? [wasmHttpFilter({ wasmPath: minimalWasm, vmId: "probe-minimal", pluginName: "probe-minimal", config: "" })]
          : [wasmHttpFilter({ wasmPath: probeWasm, vmId: "probe", pluginName: "probe", config: k.config.replace("{N}", String(calls)) })];
    listeners.push(httpListener({ name: `probe_${k.id}`, port, direction: "OUTBOUND", cluster: "app", filters }));
  }
  const envoy = await startEnvoy({
    name: "bench-probe",
    node: sidecarNode(CLIENT),
    listeners,
    clusters: [serviceCluster("app", SERVICE, [{ port: upstream.port }])],
    concurrency: 1,
  });
  try {
    pin(envoy.pid, where.meshCpu);
    for (const port of ports) await h2load({ port, requests: 500, connections: 16, http1: true, cpu: where.loadCpu });
    const samples: number[][] = kinds.map(() => []);
    for (let rep = 0; rep < reps; rep++) {
      for (let i = 0; i < kinds.length; i++) {
        const { result, cpuUs } = await withCpuFine([envoy.pid], () => h2load({ port: ports[i], requests, connections: 16, http1: true, cpu: where.loadCpu }));
        samples[i].push(cpuUs[0] / result.succeeded);
      }
      progress(`host-call prices: repetition ${rep + 1}/${reps} done`);
    }
    const base = median(samples[2]);
    return {
      bare: spread(samples[0]),
      empty_minimal_exports: spread(samples[1]),
      empty: spread(samples[2]),
      kinds: kinds.slice(3).map((k, i) => ({
        id: k.id,
        label: k.label,
        us_per_call: (median(samples[i + 3]) - base) / calls,
        cpu_us_per_request: spread(samples[i + 3]),
      })),
    };
  } finally {
    await envoy.stop();
  }
}
