// `make bench`: the plugin's overhead against bare Envoy, side by side, in one run.
//
// Configurations (each a pair of Istio-shaped sidecars, client outbound -> server inbound ->
// direct_response upstream, one Envoy worker each; see bench/topology.ts):
//   bare        Envoy, no filter
//   empty       Envoy + an empty AssemblyScript filter (bench/empty-filter): the floor of V8
//   stats       the plugin: 25 labels, metadata exchange, trace context off
//   trace-1     the plugin with tracing at 1% sampling, spans to a Zipkin blackhole
//   trace-100   the same at 100%
//   zipkin-100  bare Envoy with its native Zipkin tracer at 100%, spans to the same blackhole
//   bare-mtls, full-mtls  bare and the full configuration with Istio's mutual TLS between the
//               sidecars (Istio's own benchmark runs with mTLS); h1 phase only, reported beside
//               the plaintext ratios (the plaintext figures stay the headline)
// measured interleaved (A B C ... A B C ...) in every repetition, per phase:
//   h1       h2load --h1, a fixed request count, 16 keep-alive connections, closed loop:
//            Envoy CPU per request (/proc/<pid>/stat) and maximum throughput
//   latency  fortio at 1000 req/s over 16 connections (Istio's setting), exact percentiles
//   h2       h2load over HTTP/2 (4 connections x 8 streams), closed loop
// then the hot-path profile (host calls per request, price of one host call of each kind) and
// the heap check (a million requests through the full configuration, VM heap before/after).
//
// Output: bench/results/latest.json, chart.svg, chart.png, and the results section of
// bench/README.md (`--render` redoes those from latest.json). Environment: BENCH_QUICK=1 (under 3 minutes), BENCH_REPS, BENCH_PIN=0 (no CPU
// pinning), PLUGIN_WASM (module under test), BENCH_HEAP_REQUESTS, BENCH_BUDGET_S.
import { cpus, loadavg, release as kernelRelease } from "node:os";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  ENVOY_BIN, freePort, httpListener, httpRequest, PLUGIN_WASM, ROOT, startEnvoy, startUpstream, staticCluster, wasmHttpFilter,
} from "../tests/harness/envoy.ts";
import { serviceCluster, sidecarNode } from "../tests/harness/sidecars.ts";
import { parsePrometheus, select } from "../tests/harness/prometheus.ts";
import {
  CLIENT, pairCertificates, pin, placement, unpin, RESPONSE_BYTES, SERVICE, startPair, startUpstreamEnvoy, type Filters, type Pair, type Placement, type Upstream,
} from "./topology.ts";
import { buildEmptyFilter, buildProbe, BENCH_BUILD } from "./build.ts";
import { buildCountingModule } from "./hostcalls.ts";
import { CLOCK_TICKS, cpuNs, FORTIO, fortio, h2load, withCpu } from "./load.ts";
import { hostCallCosts, hostCallProfile, type HostCallProfile, type SidecarCalls } from "./profile.ts";
import { emulate } from "./emulator.ts";
import { median, round, spread, type Spread } from "./stats.ts";
import { renderChart } from "./chart.ts";
import { writeReadme } from "./report.ts";

const QUICK = process.env.BENCH_QUICK === "1";
const P = {
  // Full runs: 4 repetitions, 3 once tracing adds two configurations (to stay in the budget).
  reps: 0,
  warmup: QUICK ? 500 : 2000,
  h1Requests: QUICK ? 2000 : 6000,
  h2Requests: QUICK ? 2000 : 5000,
  latencyRequests: QUICK ? 1500 : 4000,
  qps: 1000,
  connections: 16,
  h2Connections: 4,
  h2Streams: 8,
  heapRequests: Number(process.env.BENCH_HEAP_REQUESTS ?? (QUICK ? 50000 : 1000000)),
  heapChunk: QUICK ? 25000 : 50000,
  budgetS: Number(process.env.BENCH_BUDGET_S ?? (QUICK ? 170 : 870)),
  profileRequests: QUICK ? 1000 : 3000,
  probeCalls: 50,
  probeRequests: QUICK ? 1000 : 5000,
  probeReps: QUICK ? 1 : 3,
  pin: process.env.BENCH_PIN !== "0",
};
const MODULE_BUDGET = 65536;
// proxy_on_response_body (twice: the 1 KiB body, then end of stream) and proxy_on_done: the
// callbacks Envoy calls per request that the minimal-exports filter does not export.
const VM_ENTRIES_REMOVED = 3;
const HEAP_PAGE = 65536;
const RESULTS = join(ROOT, "bench/results");

const started = Date.now();
const elapsed = () => (Date.now() - started) / 1000;
function progress(text: string): void {
  console.log(`[${elapsed().toFixed(1).padStart(6)} s] ${text}`);
}

// ---------------------------------------------------------------- configurations

interface Config {
  id: string;
  label: string;
  description: string;
  filters: Filters;
  status: "measured" | "skipped";
  reason?: string;
  /** Phases it is measured in (default: all). */
  phases?: Phase[];
}

const TRACING_OFF = { tracing: { enabled: false } };
function tracing(percent: number): unknown {
  return { tracing: { random_sampling_percentage: percent, zipkin: { cluster: "zipkin" } } };
}

// A candidate build of a hot-path change (BENCH_CANDIDATE_WASM, with its sources in
// BENCH_CANDIDATE_SOURCE for the host-call count): measured in the same run as the full
// configuration with the candidate module, so before/after share the machine's conditions.
const CANDIDATE_WASM = process.env.BENCH_CANDIDATE_WASM;
const CANDIDATE_SOURCE = process.env.BENCH_CANDIDATE_SOURCE;
const CANDIDATE_LABEL = process.env.BENCH_CANDIDATE_LABEL ?? "hot-path candidate";

function configurations(tracingAvailable: boolean, tracingReason: string): Config[] {
  const off = tracingAvailable ? TRACING_OFF : {};
  // As deploy/wasmplugin-http.yaml: root ids stats_outbound / stats_inbound (which fix the
  // reporter), and disable_host_header_fallback on the server side, as Istio sets it inbound.
  const plugin = (extra: unknown): Filters => ({
    wasm: "plugin",
    clientRootId: "stats_outbound",
    serverRootId: "stats_inbound",
    clientConfig: { reporter: "UNSPECIFIED", ...(extra as object) },
    serverConfig: { reporter: "UNSPECIFIED", disable_host_header_fallback: true, ...(extra as object) },
  });
  const traced = (id: string, percent: number): Config => ({
    id,
    label: `plugin + tracing ${percent}%`,
    description: `stats and metadata exchange plus trace context, ${percent}% sampled, spans to a Zipkin blackhole`,
    filters: plugin(tracing(percent)),
    status: tracingAvailable ? "measured" : "skipped",
    reason: tracingAvailable ? undefined : tracingReason,
  });
  const list: Config[] = [
    { id: "bare", label: "bare Envoy", description: "no HTTP filter but the router", filters: { wasm: "none" }, status: "measured" },
    { id: "empty", label: "empty AS filter", description: "an AssemblyScript filter that does nothing (bench/empty-filter): the floor cost of V8", filters: { wasm: "empty" }, status: "measured" },
    { id: "stats", label: "plugin, stats", description: "the plugin: 25 labels on both reporters, metadata exchange" + (tracingAvailable ? ", tracing off" : ""), filters: plugin(off), status: "measured" },
    traced("trace-1", 1),
    traced("trace-100", 100),
    { id: "zipkin-100", label: "Envoy Zipkin 100%", description: "bare Envoy with its native Zipkin tracer, 100% sampled, spans to the same blackhole", filters: { wasm: "none", nativeZipkinPercent: 100 }, status: "measured" },
  ];
  if (CANDIDATE_WASM) {
    const full = list.find((c) => c.id === (tracingAvailable ? "trace-1" : "stats"))!;
    list.push({
      id: "candidate",
      label: CANDIDATE_LABEL,
      description: `${full.description}; module ${CANDIDATE_WASM} (${CANDIDATE_LABEL})`,
      filters: { ...full.filters, pluginPath: CANDIDATE_WASM },
      status: "measured",
    });
  }
  return list;
}

/**
 * Whether the module under test takes a `tracing` configuration and propagates trace context:
 * Envoy with the plugin at 100% sampling must start, and a request through it must reach the
 * upstream carrying a traceparent or B3 header.
 */
async function probeTracing(where: Placement, upstream: Upstream): Promise<{ available: boolean; reason: string }> {
  const app = await startUpstream();
  const port = await freePort();
  const envoy = await startEnvoy({
    name: "bench-tracing-probe",
    allowFailure: true,
    node: sidecarNode(CLIENT),
    listeners: [httpListener({ name: "outbound_probe", port, direction: "OUTBOUND", cluster: "app", filters: [wasmHttpFilter({ config: tracing(100) })] })],
    clusters: [serviceCluster("app", SERVICE, [{ port: app.port }]), staticCluster("zipkin", upstream.collectorPort)],
    concurrency: 1,
  });
  try {
    if (envoy.exitCode !== undefined) {
      const refused = /configuration refused: (.*)/.exec(envoy.logs());
      return { available: false, reason: `not available: plugin has no tracing config yet${refused ? ` (${refused[1].trim()})` : ""}` };
    }
    pin(envoy.pid, where.meshCpu);
    const res = await httpRequest(`http://127.0.0.1:${port}/`);
    const headers = app.requests[0]?.headers ?? {};
    if (res.status !== 200) return { available: false, reason: `not available: a request through the plugin with tracing answered ${res.status}` };
    if (!headers.traceparent && !headers["x-b3-traceid"] && !headers.b3) {
      return { available: false, reason: "not available: plugin accepts a tracing config but propagates no trace context yet" };
    }
    return { available: true, reason: "" };
  } finally {
    await envoy.stop();
    await app.close();
  }
}

// ---------------------------------------------------------------- measurements

type Phase = "h1" | "latency" | "h2";

interface Run {
  config: string;
  rep: number;
  phase: Phase;
  requests: number;
  ok: number;
  rps: number;
  seconds: number;
  cpu_us_per_request: { client: number; server: number; pair: number; upstream: number };
  /** The same from /proc/<pid>/task/<tid>/schedstat (nanoseconds), as a cross-check of the tick counts. */
  cpu_us_per_request_schedstat: { client: number; server: number; pair: number };
  /** Share of one core the pair used meanwhile (both sidecars). */
  pair_cores: number;
  latency_us?: { p50: number; p90: number; p99: number; p999: number; max: number; fortio_p90: number; fortio_p99: number };
}

async function measure(cfg: Config, pair: Pair, upstream: Upstream, phase: Phase, rep: number, where: Placement): Promise<Run> {
  const pids = [pair.client.pid, pair.server.pid, upstream.envoy.pid];
  const run = async () => {
    if (phase === "latency") {
      const f = await fortio({ port: pair.port, qps: P.qps, connections: P.connections, requests: P.latencyRequests, cpu: where.loadCpu });
      return { requests: f.requests, ok: f.ok, rps: f.actualQps, seconds: f.seconds, f };
    }
    const r = await h2load({
      port: pair.port,
      requests: phase === "h1" ? P.h1Requests : P.h2Requests,
      connections: phase === "h1" ? P.connections : P.h2Connections,
      streams: P.h2Streams,
      http1: phase === "h1",
      cpu: where.loadCpu,
    });
    return { requests: r.requests, ok: r.succeeded, rps: r.rps, seconds: r.seconds, f: undefined };
  };
  const fineBefore = pids.map(cpuNs);
  const { result, cpuUs } = await withCpu(pids, run);
  const fineUs = pids.map((pid, i) => (cpuNs(pid) - fineBefore[i]) / 1000);
  const n = Math.max(1, result.ok);
  const out: Run = {
    config: cfg.id,
    rep,
    phase,
    requests: result.requests,
    ok: result.ok,
    rps: result.rps,
    seconds: result.seconds,
    cpu_us_per_request: { client: cpuUs[0] / n, server: cpuUs[1] / n, pair: (cpuUs[0] + cpuUs[1]) / n, upstream: cpuUs[2] / n },
    pair_cores: (cpuUs[0] + cpuUs[1]) / 1e6 / result.seconds,
    cpu_us_per_request_schedstat: { client: fineUs[0] / n, server: fineUs[1] / n, pair: (fineUs[0] + fineUs[1]) / n },
  };
  const f = result.f;
  if (f) out.latency_us = { p50: f.p50, p90: f.p90, p99: f.p99, p999: f.p999, max: f.max, fortio_p90: f.fortioP90, fortio_p99: f.fortioP99 };
  return out;
}

async function heapGauge(pair: Pair): Promise<{ client: number; server: number }> {
  const read = async (e: Pair["client"]) => {
    const g = select(parsePrometheus(await e.prometheus()), "mesh_telemetry_vm_heap_bytes");
    return g.length ? Math.max(...g.map((s) => s.value)) : NaN;
  };
  return { client: await read(pair.client), server: await read(pair.server) };
}

async function requestsTotal(pair: Pair): Promise<{ client: number; server: number }> {
  const read = async (e: Pair["client"]) => select(parsePrometheus(await e.prometheus()), "istio_requests_total").reduce((a, s) => a + s.value, 0);
  return { client: await read(pair.client), server: await read(pair.server) };
}

// ---------------------------------------------------------------- machine

function busyCores(seconds: number): number {
  const read = () => readFileSync("/proc/stat", "utf8").split("\n")[0].split(/\s+/).slice(1).map(Number);
  const a = read();
  spawnSync("sleep", [String(seconds)]);
  const b = read();
  const d = b.map((x, i) => x - a[i]);
  // user nice system idle iowait irq softirq steal
  const busy = d[0] + d[1] + d[2] + d[5] + d[6];
  return busy / CLOCK_TICKS / seconds;
}

function version(cmd: string, args: string[], pattern: RegExp): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  const m = pattern.exec((r.stdout ?? "") + (r.stderr ?? ""));
  return m ? m[1] : "unknown";
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const mode = QUICK ? "quick" : "full";
  const envs = ["BENCH_QUICK", "BENCH_REPS", "BENCH_PIN", "BENCH_HEAP_REQUESTS", "BENCH_BUDGET_S", "PLUGIN_WASM", "BENCH_CANDIDATE_WASM", "BENCH_CANDIDATE_SOURCE", "BENCH_CANDIDATE_LABEL"]
    .filter((k) => process.env[k] !== undefined)
    .map((k) => `${k}=${JSON.stringify(process.env[k])}`.replace(/^(\w+)="([^" ]*)"$/, "$1=$2"));
  const command = `${envs.length ? envs.join(" ") + " " : ""}${process.env.MAKELEVEL ? "make bench" : "node --import tsx bench/run.ts"}`;
  progress(`make bench (${mode}): budget ${P.budgetS} s`);
  for (const tool of ["h2load", FORTIO, "rsvg-convert", "taskset"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) throw new Error(`${tool} not found: run 'make bench', which installs it`);
  }
  if (!existsSync(PLUGIN_WASM)) throw new Error(`${PLUGIN_WASM} missing: run 'make build'`);

  const machine = {
    cpu_model: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    kernel: kernelRelease(),
    loadavg_start: loadavg().map((x) => round(x, 2)),
    busy_cores_before_start: round(busyCores(3), 2),
    loadavg_end: [] as number[],
    busy_cores_after_end: NaN,
  };
  progress(`machine: ${machine.cores} cores (${machine.cpu_model}), loadavg ${machine.loadavg_start.join(" ")}, ${machine.busy_cores_before_start} cores busy before start`);
  const envoyVersion = version(ENVOY_BIN, ["--version"], /version: (\S+)/);
  const tools = {
    envoy: envoyVersion,
    h2load: version("h2load", ["--version"], /(nghttp2\/\S+)/),
    fortio: version(FORTIO, ["version"], /^(\S+)/),
    node: process.version,
    assemblyscript: JSON.parse(readFileSync(join(ROOT, "node_modules/assemblyscript/package.json"), "utf8")).version,
  };
  const moduleBytes = statSync(PLUGIN_WASM).size;
  const head = spawnSync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).stdout.trim();
  const dirty = spawnSync("git", ["-C", ROOT, "status", "--porcelain", "--", "assembly"], { encoding: "utf8" }).stdout.trim().length > 0;
  const moduleSource = process.env.BENCH_MODULE_SOURCE ?? `working tree at ${head}${dirty ? " (assembly/ has uncommitted changes)" : ""}`;
  const moduleSha = createHash("sha256").update(readFileSync(PLUGIN_WASM)).digest("hex");
  progress(`Envoy ${envoyVersion}; module under test ${PLUGIN_WASM}: ${moduleBytes} bytes (budget ${MODULE_BUDGET})`);

  progress("building the empty filter, the host-call probe and the counting variant (release options)");
  const probeWasm = buildProbe();
  const minimalWasm = buildEmptyFilter();
  const countingWasm = join(BENCH_BUILD, "plugin-hostcalls.wasm");
  buildCountingModule(process.env.BENCH_SOURCE ?? ROOT, countingWasm);
  const candidateCountingWasm = join(BENCH_BUILD, "candidate-hostcalls.wasm");
  if (CANDIDATE_WASM && CANDIDATE_SOURCE) buildCountingModule(CANDIDATE_SOURCE, candidateCountingWasm);
  // The `empty` configuration exports the callbacks the plugin exports (assembly/index.ts).
  const mod = { plugin: PLUGIN_WASM, empty: minimalWasm };

  const where = placement(P.pin, machine.cores);
  progress(where.meshCpu === null ? "no CPU pinning" : `CPU ${where.meshCpu}: both sidecars; CPU ${where.loadCpu}: load generator and upstream`);
  const upstream = await startUpstreamEnvoy(where);
  const traceProbe = await probeTracing(where, upstream);
  progress(traceProbe.available ? "tracing: available, measured at 1% and 100%" : `tracing: ${traceProbe.reason}`);
  const configs = configurations(traceProbe.available, traceProbe.reason);
  const measured = configs.filter((c) => c.status === "measured");
  P.reps = Number(process.env.BENCH_REPS ?? (QUICK ? 2 : measured.length <= 4 ? 4 : 3));
  progress(`${measured.length} configurations, ${P.reps} repetitions`);
  const fullId = traceProbe.available ? "trace-1" : "stats";
  // The mTLS pair, bare and full, beside the plaintext configurations (h1 only, to keep the run's length).
  const certs = await pairCertificates(join(BENCH_BUILD, "mtls"));
  const full = configs.find((c) => c.id === fullId)!;
  const mtlsConfigs: Config[] = [
    { id: "bare-mtls", label: "bare Envoy, mTLS", description: "bare Envoy with Istio's mutual TLS between the sidecars", filters: { wasm: "none", mtls: certs }, status: "measured", phases: ["h1"] },
    { id: "full-mtls", label: `${full.label}, mTLS`, description: `${full.description}; Istio's mutual TLS between the sidecars`, filters: { ...full.filters, mtls: certs }, status: "measured", phases: ["h1"] },
  ];
  const all = [...measured, ...mtlsConfigs];
  progress(`mTLS pair: ${mtlsConfigs.map((c) => c.id).join(", ")} (h1 phase), certificates in ${join(BENCH_BUILD, "mtls")}`);

  const pairs = new Map<string, Pair>();
  const runs: Run[] = [];
  let profile: HostCallProfile | null = null;
  let emulator: { module_us: number; candidate_us: number; ratio: number } | null = null;
  let candidateProfile: HostCallProfile | null = null;
  let costs: Awaited<ReturnType<typeof hostCallCosts>> | null = null;
  const heap: any = { config: fullId, requests_target: P.heapRequests };
  try {
    for (const c of all) {
      pairs.set(c.id, await startPair(c.id, c.filters, mod, upstream, where));
      progress(`started ${c.id}: ${c.description}`);
    }
    for (const c of all) await h2load({ port: pairs.get(c.id)!.port, requests: P.warmup, connections: P.connections, http1: true, cpu: where.loadCpu });
    progress(`warmed up (${P.warmup} requests each)`);
    const heapAtStart: Record<string, { client: number; server: number }> = {};
    for (const c of measured) if (c.filters.wasm === "plugin") heapAtStart[c.id] = await heapGauge(pairs.get(c.id)!);

    for (let rep = 1; rep <= P.reps; rep++) {
      for (const phase of ["h1", "latency", "h2"] as Phase[]) {
        for (const c of all) {
          if (c.phases && !c.phases.includes(phase)) continue;
          const r = await measure(c, pairs.get(c.id)!, upstream, phase, rep, where);
          runs.push(r);
          const lat = r.latency_us ? `  p50 ${r.latency_us.p50.toFixed(0)}  p90 ${r.latency_us.p90.toFixed(0)}  p99 ${r.latency_us.p99.toFixed(0)} us` : "";
          progress(
            `rep ${rep}/${P.reps} ${phase.padEnd(7)} ${c.id.padEnd(10)} ${String(r.ok).padStart(6)} ok ${r.rps.toFixed(0).padStart(6)} req/s  ` +
              `cpu ${r.cpu_us_per_request.pair.toFixed(1)} us/req (client ${r.cpu_us_per_request.client.toFixed(1)} + server ${r.cpu_us_per_request.server.toFixed(1)})${lat}`,
          );
          if (r.ok < r.requests) progress(`  warning: ${r.requests - r.ok} requests of ${c.id} did not answer 200`);
        }
      }
    }
    const heapAtEnd: Record<string, { client: number; server: number }> = {};
    for (const c of measured) if (c.filters.wasm === "plugin") heapAtEnd[c.id] = await heapGauge(pairs.get(c.id)!);
    heap.per_configuration = Object.fromEntries(Object.keys(heapAtStart).map((id) => [id, { after_warmup: heapAtStart[id], after_repetitions: heapAtEnd[id] }]));

    // The hot-path profile.
    const profiled = measured.find((c) => c.id === fullId)!;
    progress(`profile: counting variant on ${profiled.id}, ${P.profileRequests} sequential requests`);
    profile = await hostCallProfile(profiled.id, profiled.filters, countingWasm, upstream, where, P.profileRequests);
    progress(`profile: ${profile.client.total.toFixed(1)} host calls per request in the client sidecar, ${profile.server.total.toFixed(1)} in the server sidecar`);
    if (CANDIDATE_WASM && CANDIDATE_SOURCE) {
      // The candidate's count is an extra: a source tree that does not match must not cost the run.
      try {
        candidateProfile = await hostCallProfile("candidate", profiled.filters, candidateCountingWasm, upstream, where, P.profileRequests);
        progress(`profile, candidate: ${candidateProfile.client.total.toFixed(1)} host calls per request in the client sidecar, ${candidateProfile.server.total.toFixed(1)} in the server sidecar`);
      } catch (err) {
        progress(`profile, candidate: not counted: ${String((err as Error).message).split("\n")[0]}`);
      }
    }
    costs = await hostCallCosts(probeWasm, minimalWasm, upstream, where, P.probeCalls, P.probeRequests, P.probeReps, progress);
    for (const k of costs.kinds) progress(`  ${k.label}: ${k.us_per_call.toFixed(2)} us of Envoy CPU per call`);
    if (CANDIDATE_WASM) {
      // The VM's own time per request pair in Node (the emulator), module and candidate taking
      // turns in one run (trace context at 1%, unsampled, as the full configuration).
      progress("emulator: the VM's own time per request, module against candidate");
      const [mine, theirs] = await emulate([PLUGIN_WASM, CANDIDATE_WASM], QUICK ? 10000 : 40000, 1);
      emulator = { module_us: round(mine.vmOwnUsPerRequest, 2), candidate_us: round(theirs.vmOwnUsPerRequest, 2), ratio: round(mine.vmOwnUsPerRequest / theirs.vmOwnUsPerRequest, 3) };
      progress(`emulator: ${emulator.module_us} us against ${emulator.candidate_us} us per request pair (${emulator.ratio})`);
    }

    // The heap check, with whatever time is left: chunks until the target or the budget.
    const pair = pairs.get(fullId)!;
    const reserve = 20;
    // Every core for this pair: the point here is the request count, not a clean CPU figure.
    unpin(pair.client.pid, machine.cores);
    unpin(pair.server.pid, machine.cores);
    // The heap grows to the high-water mark of the load it serves (more connections, more live
    // streams at a collection), and the runtime's allocator grows memory by doubling it: warm
    // up at the heap check's own load first, then count from there.
    heap.before_warmup = await heapGauge(pair);
    heap.warmup_requests = P.heapChunk / 2;
    await h2load({ port: pair.port, requests: heap.warmup_requests, connections: 32, http1: true, cpu: null });
    heap.before = await heapGauge(pair);
    progress(`heap check: VM heap client ${heap.before_warmup.client} -> ${heap.before.client}, server ${heap.before_warmup.server} -> ${heap.before.server} bytes over a warm-up of ${heap.warmup_requests} requests at 32 connections`);
    heap.requests_total_before = await requestsTotal(pair);
    heap.trajectory = [{ requests: 0, ...heap.before }];
    let done = 0;
    let rate = 0;
    const t0 = Date.now();
    while (done < P.heapRequests) {
      const left = P.budgetS - elapsed() - reserve;
      const chunk = Math.min(P.heapChunk, P.heapRequests - done);
      // At least one chunk, so the heap numbers always exist; then only what fits.
      if (done > 0 && chunk / rate > left) break;
      const r = await h2load({ port: pair.port, requests: chunk, connections: 32, http1: true, cpu: null });
      done += r.succeeded;
      rate = done / ((Date.now() - t0) / 1000);
      const g = await heapGauge(pair);
      heap.trajectory.push({ requests: done, ...g });
      progress(`heap check: ${done}/${P.heapRequests} requests through ${fullId} (${rate.toFixed(0)} req/s), VM heap client ${g.client} server ${g.server} bytes`);
    }
    heap.after = await heapGauge(pair);
    heap.requests_total_after = await requestsTotal(pair);
    heap.requests = done;
    heap.complete = done >= P.heapRequests;
    heap.seconds = round((Date.now() - t0) / 1000, 1);
  } finally {
    for (const p of pairs.values()) await p.stop();
    await upstream.envoy.stop();
  }

  // ---------------------------------------------------------------- summary
  machine.loadavg_end = loadavg().map((x) => round(x, 2));
  machine.busy_cores_after_end = round(busyCores(3), 2);
  const of = (id: string, phase: Phase, f: (r: Run) => number) => runs.filter((r) => r.config === id && r.phase === phase).map(f);
  const summary: Record<string, any> = {};
  for (const c of measured) {
    summary[c.id] = {
      cpu_h1: spread(of(c.id, "h1", (r) => r.cpu_us_per_request.pair)),
      cpu_h1_client: spread(of(c.id, "h1", (r) => r.cpu_us_per_request.client)),
      cpu_h1_server: spread(of(c.id, "h1", (r) => r.cpu_us_per_request.server)),
      cpu_h1_schedstat: spread(of(c.id, "h1", (r) => r.cpu_us_per_request_schedstat.pair)),
      cpu_1000rps: spread(of(c.id, "latency", (r) => r.cpu_us_per_request.pair)),
      cpu_h2: spread(of(c.id, "h2", (r) => r.cpu_us_per_request.pair)),
      rps_h1: spread(of(c.id, "h1", (r) => r.rps)),
      rps_h2: spread(of(c.id, "h2", (r) => r.rps)),
      p50: spread(of(c.id, "latency", (r) => r.latency_us!.p50)),
      p90: spread(of(c.id, "latency", (r) => r.latency_us!.p90)),
      p99: spread(of(c.id, "latency", (r) => r.latency_us!.p99)),
      p999: spread(of(c.id, "latency", (r) => r.latency_us!.p999)),
      pair_cores_at_1000rps: spread(of(c.id, "latency", (r) => r.pair_cores)),
      qps_at_latency: spread(of(c.id, "latency", (r) => r.rps)),
    };
  }
  const m = (id: string, key: string) => summary[id]?.[key]?.median ?? NaN;
  const ratio = (a: number, b: number) => round(a / b, 3);
  const added = (id: string, p: string) => round(m(id, p) - m("bare", p), 0);
  const cpuPerRequest = Object.fromEntries(measured.map((c) => [c.id, round(m(c.id, "cpu_h1"), 1)]));
  const spreadOut = Object.fromEntries(
    measured.map((c) => [c.id, Object.fromEntries(Object.entries(summary[c.id]).map(([k, s]: [string, any]) => [k, { median: round(s.median, 1), min: round(s.min, 1), max: round(s.max, 1), rel: round(s.rel, 3) }]))]),
  );

  const mtlsSummary = Object.fromEntries(mtlsConfigs.map((c) => [c.id, { cpu_h1: spread(of(c.id, "h1", (r) => r.cpu_us_per_request.pair)), rps_h1: spread(of(c.id, "h1", (r) => r.rps)) }]));
  const mm = (id: string, key: "cpu_h1" | "rps_h1") => mtlsSummary[id][key].median;
  const mtls = {
    note: "bare and the full configuration with Istio's mutual TLS between the sidecars (ALPN istio-http/1.1, SPIFFE certificates from openssl, client certificate required), h1 phase only",
    configurations: mtlsConfigs.map((c) => ({ id: c.id, label: c.label, description: c.description })),
    cpu_us_per_request: Object.fromEntries(mtlsConfigs.map((c) => [c.id, round(mm(c.id, "cpu_h1"), 1)])),
    throughput_rps: Object.fromEntries(mtlsConfigs.map((c) => [c.id, round(mm(c.id, "rps_h1"), 0)])),
    cpu_overhead_ratio_full: ratio(mm("full-mtls", "cpu_h1"), mm("bare-mtls", "cpu_h1")),
    throughput_ratio_full: ratio(mm("full-mtls", "rps_h1"), mm("bare-mtls", "rps_h1")),
    /** What mTLS itself costs bare Envoy, for scale. */
    cpu_ratio_bare_mtls_to_bare: ratio(mm("bare-mtls", "cpu_h1"), m("bare", "cpu_h1")),
    spread: Object.fromEntries(mtlsConfigs.map((c) => [c.id, Object.fromEntries(Object.entries(mtlsSummary[c.id]).map(([k, v]) => [k, { median: round(v.median, 1), min: round(v.min, 1), max: round(v.max, 1), rel: round(v.rel, 3) }]))])),
  };
  const heapGrowth = (side: "client" | "server") => heap.after[side] - heap.before[side];
  // The hot-path issue's acceptance: ratios within each repetition (median over the
  // repetitions), attribute reads (get_property and the expr_evaluate that bundles them) and
  // all host calls per request per sidecar from the counting variant, the module, the heap.
  const pairedCpu = pairedRatios(runs, "h1", (r) => r.cpu_us_per_request.pair, "bare");
  const reads = (side: SidecarCalls | undefined) => {
    if (!side) return NaN;
    let n = 0;
    for (const [key, [calls]] of Object.entries(side.detail.counts)) if (/proxy_get_property|proxy_call_foreign_function/.test(key)) n += calls;
    return round(n, 2);
  };
  const targets = [
    target("CPU per request, full / bare (HTTP/1.1, median of per-repetition ratios)", "<= 1.35", pairedCpu[fullId]?.median ?? NaN, (v) => v <= 1.35),
    target("CPU per request, stats / bare (HTTP/1.1, median of per-repetition ratios)", "<= 1.25", pairedCpu["stats"]?.median ?? NaN, (v) => v <= 1.25),
    target("attribute reads per request, client sidecar (get_property + expr_evaluate)", "<= 3", reads(profile?.client), (v) => v <= 3),
    target("attribute reads per request, server sidecar (get_property + expr_evaluate)", "<= 3", reads(profile?.server), (v) => v <= 3),
    target("host calls per request, client sidecar", "<= 25 (7f9f870)", round(profile?.client.total ?? NaN, 2), (v) => v <= 25),
    target("host calls per request, server sidecar", "<= 20 (7f9f870)", round(profile?.server.total ?? NaN, 2), (v) => v <= 20),
    target(
      `VM heap growth over ${heap.requests} requests (bytes, larger of the two sidecars)`,
      `<= ${HEAP_PAGE} (one page) over 1000000 requests`,
      Math.max(heapGrowth("client"), heapGrowth("server")),
      (v) => v <= HEAP_PAGE && heap.requests >= 1000000,
    ),
    target("release module (bytes)", `<= ${MODULE_BUDGET}`, moduleBytes, (v) => v <= MODULE_BUDGET),
    ...(emulator ? [target("the VM's own time per request (emulator), module / candidate", "<= 0.333", emulator.ratio, (v) => v <= 0.333)] : []),
  ];

  const results = {
    schema: 1,
    generated_at: new Date().toISOString(),
    mode,
    command,
    duration_s: round(elapsed(), 1),
    machine,
    envoy_version: envoyVersion,
    tools,
    module: PLUGIN_WASM.replace(ROOT + "/", ""),
    module_sha256: moduleSha,
    module_source: moduleSource,
    module_bytes: moduleBytes,
    module_budget_bytes: MODULE_BUDGET,
    empty_filter_bytes: statSync(minimalWasm).size,
    method: {
      topology: "load generator -> client sidecar (outbound, reporter=source) -> server sidecar (inbound, reporter=destination) -> upstream Envoy (direct_response); loopback, HTTP/1.1 keep-alive between hops",
      envoy_concurrency: 1,
      response_bytes: RESPONSE_BYTES,
      pinning: where.meshCpu === null ? "none" : { sidecars_cpu: where.meshCpu, load_and_upstream_cpu: where.loadCpu },
      cpu_accounting: `utime+stime of each sidecar from /proc/<pid>/stat (clock ticks, ${CLOCK_TICKS}/s) over a fixed request count; per request = pair (client + server)`,
      h1: { tool: "h2load --h1", requests: P.h1Requests, connections: P.connections },
      latency: { tool: "fortio load -uniform -nocatchup", qps: P.qps, connections: P.connections, requests: P.latencyRequests, percentiles: "exact, from fortio's per-request access log" },
      h2: { tool: "h2load (HTTP/2, prior knowledge)", requests: P.h2Requests, connections: P.h2Connections, streams_per_connection: P.h2Streams },
      warmup_requests: P.warmup,
      order: "interleaved: for each repetition, for each phase, every configuration in turn",
    },
    configurations: configs.map((c) => ({ id: c.id, label: c.label, description: c.description, status: c.status, ...(c.reason ? { reason: c.reason } : {}) })),
    full_configuration: fullId,
    full_configuration_note: traceProbe.available ? "stats + metadata exchange + tracing at 1% (Istio's default sampling)" : `stats + metadata exchange; tracing ${traceProbe.reason}`,
    repetitions: P.reps,
    cpu_us_per_request: cpuPerRequest,
    cpu_us_per_request_by_sidecar: Object.fromEntries(measured.map((c) => [c.id, { client: round(m(c.id, "cpu_h1_client"), 1), server: round(m(c.id, "cpu_h1_server"), 1) }])),
    cpu_us_per_request_schedstat: Object.fromEntries(measured.map((c) => [c.id, round(m(c.id, "cpu_h1_schedstat"), 1)])),
    cpu_us_per_request_at_1000rps: Object.fromEntries(measured.map((c) => [c.id, round(m(c.id, "cpu_1000rps"), 1)])),
    cpu_us_per_request_h2: Object.fromEntries(measured.map((c) => [c.id, round(m(c.id, "cpu_h2"), 1)])),
    cpu_overhead_ratio_full: ratio(m(fullId, "cpu_h1"), m("bare", "cpu_h1")),
    cpu_overhead_ratio_stats: ratio(m("stats", "cpu_h1"), m("bare", "cpu_h1")),
    cpu_overhead_ratio_empty: ratio(m("empty", "cpu_h1"), m("bare", "cpu_h1")),
    cpu_overhead_ratio_full_at_1000rps: ratio(m(fullId, "cpu_1000rps"), m("bare", "cpu_1000rps")),
    throughput_rps: Object.fromEntries(measured.map((c) => [c.id, { h1: round(m(c.id, "rps_h1"), 0), h2: round(m(c.id, "rps_h2"), 0) }])),
    throughput_ratio_full: ratio(m(fullId, "rps_h1"), m("bare", "rps_h1")),
    throughput_ratio_stats: ratio(m("stats", "rps_h1"), m("bare", "rps_h1")),
    throughput_ratio_full_h2: ratio(m(fullId, "rps_h2"), m("bare", "rps_h2")),
    mtls,
    latency_us: Object.fromEntries(measured.map((c) => [c.id, { p50: round(m(c.id, "p50"), 0), p90: round(m(c.id, "p90"), 0), p99: round(m(c.id, "p99"), 0), p999: round(m(c.id, "p999"), 0) }])),
    added_p90_us: added(fullId, "p90"),
    added_p99_us: added(fullId, "p99"),
    added_latency_us: Object.fromEntries(measured.filter((c) => c.id !== "bare").map((c) => [c.id, { p50: added(c.id, "p50"), p90: added(c.id, "p90"), p99: added(c.id, "p99") }])),
    vm_heap_bytes_before: heap.before,
    vm_heap_bytes_after: heap.after,
    heap_check: heap,
    spread: spreadOut,
    targets,
    host_calls: profile,
    host_calls_candidate: candidateProfile,
    emulator_vm_time: emulator,
    candidate: CANDIDATE_WASM ? { module: CANDIDATE_WASM, module_bytes: statSync(CANDIDATE_WASM).size, source: CANDIDATE_SOURCE ?? null, label: CANDIDATE_LABEL } : null,
    host_call_cost_us: costs && {
      calls_per_request: P.probeCalls,
      requests: P.probeRequests,
      repetitions: P.probeReps,
      cpu_us_per_request: { bare: costs.bare, empty_minimal_exports: costs.empty_minimal_exports, empty: costs.empty },
      vm_entry_us: round((costs.empty.median - costs.empty_minimal_exports.median) / VM_ENTRIES_REMOVED, 2),
      vm_entries_removed_by_minimal_exports: VM_ENTRIES_REMOVED,
      empty_filter_floor_us: round(costs.empty_minimal_exports.median - costs.bare.median, 1),
      kinds: costs.kinds.map((k) => ({ ...k, us_per_call: round(k.us_per_call, 2) })),
    },
    runs: runs.map((r) => ({
      ...r,
      rps: round(r.rps, 1),
      seconds: round(r.seconds, 3),
      pair_cores: round(r.pair_cores, 3),
      cpu_us_per_request: Object.fromEntries(Object.entries(r.cpu_us_per_request).map(([k, v]) => [k, round(v, 1)])),
      cpu_us_per_request_schedstat: Object.fromEntries(Object.entries(r.cpu_us_per_request_schedstat).map(([k, v]) => [k, round(v, 1)])),
      latency_us: r.latency_us && Object.fromEntries(Object.entries(r.latency_us).map(([k, v]) => [k, round(v, 0)])),
    })),
  };

  writeResults(results);
  for (const t of targets) progress(`target ${t.met ? "MET   " : "MISSED"} ${t.name}: ${t.value} (target ${t.target})`);
  progress(`done in ${elapsed().toFixed(0)} s`);
}

/**
 * Ratios taken within each repetition (configuration / reference, same repetition, minutes
 * apart) and then summarized: robust to the machine drifting between repetitions, which the
 * ratio of two medians is not.
 */
function pairedRatios(runs: any[], phase: string, metric: (r: any) => number, reference: string): Record<string, Spread> {
  const out: Record<string, Spread> = {};
  const ids = [...new Set(runs.map((r) => r.config))];
  for (const id of ids) {
    const ratios: number[] = [];
    for (const r of runs.filter((x) => x.config === id && x.phase === phase)) {
      const ref = runs.find((x) => x.config === reference && x.phase === phase && x.rep === r.rep);
      if (ref) ratios.push(metric(r) / metric(ref));
    }
    if (ratios.length) {
      const sp = spread(ratios);
      out[id] = { median: round(sp.median, 3), min: round(sp.min, 3), max: round(sp.max, 3), rel: round(sp.rel, 3), n: sp.n };
    }
  }
  return out;
}

/** Adds the paired ratios, then writes latest.json, the chart and the README section. */
function writeResults(results: any): void {
  const runs = results.runs;
  results.paired = {
    note: "per repetition: configuration / bare (or / full), then median and min-max over the repetitions",
    cpu_ratio_to_bare_h1: pairedRatios(runs, "h1", (r) => r.cpu_us_per_request.pair, "bare"),
    throughput_ratio_to_bare_h1: pairedRatios(runs, "h1", (r) => r.rps, "bare"),
    cpu_ratio_to_bare_h2: pairedRatios(runs, "h2", (r) => r.cpu_us_per_request.pair, "bare"),
    ...(results.mtls
      ? {
          cpu_ratio_to_bare_mtls_h1: pairedRatios(runs, "h1", (r) => r.cpu_us_per_request.pair, "bare-mtls"),
          throughput_ratio_to_bare_mtls_h1: pairedRatios(runs, "h1", (r) => r.rps, "bare-mtls"),
        }
      : {}),
    ...(results.candidate
      ? {
          cpu_ratio_to_full_h1: pairedRatios(runs, "h1", (r) => r.cpu_us_per_request.pair, results.full_configuration),
          throughput_ratio_to_full_h1: pairedRatios(runs, "h1", (r) => r.rps, results.full_configuration),
        }
      : {}),
  };
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, "latest.json"), JSON.stringify(results, null, 2) + "\n");
  writeFileSync(join(RESULTS, "chart.svg"), renderChart(results));
  const png = spawnSync("rsvg-convert", ["-w", "1600", "-o", join(RESULTS, "chart.png"), join(RESULTS, "chart.svg")], { encoding: "utf8" });
  if (png.status !== 0) throw new Error(`rsvg-convert: ${png.stderr}`);
  const baselinePath = join(RESULTS, "baseline.json");
  const baseline = existsSync(baselinePath) ? JSON.parse(readFileSync(baselinePath, "utf8")) : null;
  writeReadme(join(ROOT, "bench/README.md"), results, baseline);
  progress(`wrote bench/results/latest.json, chart.svg, chart.png and the results in bench/README.md`);
}

function target(name: string, goal: string, value: number, ok: (v: number) => boolean) {
  return { name, target: goal, value, met: Number.isFinite(value) && ok(value) };
}

// `--render`: no measurement; the chart and the README section again from latest.json.
if (process.argv.includes("--render")) writeResults(JSON.parse(readFileSync(join(RESULTS, "latest.json"), "utf8")));
else await main();
process.exit(0);
