// `make demo`: a local mesh shaped like Istio's bookinfo (tools/mesh/), every pod a network
// namespace with its app and an Envoy sidecar container that runs the plugin, delivered from
// a registry through the WasmPlugin manifests; Istio's iptables interception; mutual TLS between
// sidecars with a mesh CA's SPIFFE certificates; a TCP database (redis) behind ratings;
// Prometheus scraping every proxy's :15090; Zipkin. It drives bounded traffic through the
// ingress gateway and shows, per edge, rate, errors and p50/p99 latency (HTTP) or bytes/s (TCP)
// computed by PromQL, the slowest trace and the service graph as SVG and PNG. Istio's Mesh and
// Service dashboards: how to import them into your own Grafana on this Prometheus, the same
// queries drawn over the run as a static page (served while the mesh is up) and
// build/demo/dashboard.png, and which of all their queries answer with data.
//
// Interactive (a terminal): the mesh stays up afterwards with light traffic, so Prometheus and
// Zipkin can be explored, until Ctrl-C, `make demo-down` or DEMO_HOLD_MAX minutes. Otherwise it
// tears down at once (DEMO_HOLD=<seconds> holds anyway).
// Environment: DEMO_RPS (20), DEMO_SECONDS (30), DEMO_FAIL_RATE (0.15, ratings' share of 500s),
// MESH_MODE=loopback (processes on 127.0.0.1 instead of namespaces and containers),
// DEMO_TRACING=jaeger (spans over OTLP to Jaeger v2 instead of Zipkin).
import { join } from "node:path";
import { ROOT } from "../tests/harness/envoy.ts";
import { sweepMesh } from "./mesh/cleanup.ts";
import { podmanPsCommand } from "./mesh/containers.ts";
import { dashboardCoverage, DEMO_NO_DATA_BY_DESIGN, showDashboards, type DemoDashboards } from "./mesh/dashboard.ts";
import { writeServiceGraph } from "./mesh/graph.ts";
import { startMesh, type Mesh } from "./mesh/mesh.ts";
import { edgeStats, formatEdgeTable, formatTraceTree, promQuery, slowestTrace } from "./mesh/report.ts";
import { stepper } from "./mesh/sys.ts";
import { slowestJaegerTrace } from "./mesh/jaeger.ts";

const PREFIX = "mtw";
const OUT = join(ROOT, "build/demo");
// Traffic stays bounded whatever the environment says: at most 200 req/s, 10 min, 2 h of hold.
const setting = (name: string, fallback: number, min: number, max: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`${name} must be a number from ${min} to ${max}`);
  return v;
};
const RPS = setting("DEMO_RPS", 20, 1, 200);
const SECONDS = setting("DEMO_SECONDS", 30, 5, 600);
const FAIL_RATE = setting("DEMO_FAIL_RATE", 0.15, 0, 1);
const HOLD_RPS = setting("DEMO_HOLD_RPS", 2, 0.1, 20);
const HOLD_MAX_MIN = setting("DEMO_HOLD_MAX", 30, 0, 120);
const hold = process.env.DEMO_HOLD !== undefined ? setting("DEMO_HOLD", 0, 0, 7200) : process.stdin.isTTY && !process.env.CI ? HOLD_MAX_MIN * 60 : 0;

const step = stepper();
const stop = new AbortController();
let signals = 0;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    signals++;
    if (signals === 1) {
      console.log(`\n${sig}: stopping; tearing the mesh down (${sig === "SIGINT" ? "Ctrl-C again" : "a second signal"} forces it)`);
      stop.abort();
    } else {
      console.log("forced: removing everything of the mesh now");
      sweepMesh(PREFIX).finally(() => process.exit(130));
    }
  });
}
// A crash (an exception nothing awaited) must not leave the mesh behind either.
for (const event of ["uncaughtException", "unhandledRejection"] as const) {
  process.on(event, (err) => {
    console.error(`\ndemo crashed: ${(err as Error)?.stack ?? err}\nremoving everything of the mesh`);
    sweepMesh(PREFIX).finally(() => process.exit(1));
  });
}
const aborted = () => {
  if (stop.signal.aborted) throw new Error("stopped");
};

let mesh: Mesh | undefined;
let dashboards: DemoDashboards | undefined;
let exitCode = 0;
let shown = false; // results printed: a later stop (Ctrl-C, make demo-down) is the normal end
try {
  step("starting the mesh (first run: builds the Envoy image; Zipkin takes ~20 s to start)");
  mesh = await startMesh({ prefix: PREFIX, subnet: 0, outDir: OUT, step, ratingsFailRate: FAIL_RATE, mode: process.env.MESH_MODE === "loopback" ? "loopback" : "auto" });
  aborted();

  step(`warm-up: a few requests through ${mesh.gatewayUrl} so every edge exists before the measured run`);
  await mesh.warmup();
  aborted();
  step(`traffic: ${RPS} req/s for ${SECONDS} s through the ingress gateway (ratings fails ${(FAIL_RATE * 100).toFixed(0)}% with HTTP 500, slow tail of 150 ms)`);
  const traffic = await mesh.drive({
    rps: RPS,
    seconds: SECONDS,
    abort: stop.signal,
    onProgress: (r, ms) => step(`  ${(ms / 1000).toFixed(0)} s: ${r.sent} requests sent, ${r.transportErrors} transport errors`),
  });
  aborted();
  const codes = Object.entries(traffic.byStatus).map(([c, n]) => `${n} x ${c}`).join(", ");
  step(`traffic done: ${traffic.sent} requests (${codes}${traffic.transportErrors ? `, ${traffic.transportErrors} transport errors` : ""}); waiting for Prometheus to scrape the end`);
  await mesh.prometheus!.waitForScrapes(2);

  const at = traffic.endedAt / 1000;
  const window = (traffic.endedAt - traffic.startedAt) / 1000;
  const edges = await edgeStats(mesh.prometheus!.url, window, at);
  console.log(`\nPer edge over the ${window.toFixed(0)} s run (PromQL, reporter="source": istio_requests_total and istio_request_duration_milliseconds for HTTP, istio_tcp_sent/received_bytes_total for TCP; last column: both reporters' totals):\n`);
  console.log(formatEdgeTable(edges));

  if (mesh.mode === "containers") {
    // 0.0.0.0_9080 is not bound: only connections iptables sent to 15001 reach it (handed off
    // by virtualOutbound, and counted there). virtualInbound (15006) gets what iptables redirects in.
    const cx = await promQuery(mesh.prometheus!.url, `sum by (pod, envoy_listener_address) (envoy_listener_downstream_cx_total{envoy_listener_address=~"0.0.0.0_(9080|15006)"})`);
    const per = new Map<string, { out: number; in: number }>();
    for (const s of cx) {
      const entry = per.get(s.metric.pod) ?? { out: 0, in: 0 };
      if (s.metric.envoy_listener_address.endsWith("_9080")) entry.out = s.value;
      else entry.in = s.value;
      per.set(s.metric.pod, entry);
    }
    console.log(`\nConnections iptables redirected to the sidecars (outbound via 15001 / inbound via 15006): ${[...per].map(([p, v]) => `${p} ${v.out}/${v.in}`).join(", ")}`);
  }

  console.log("");
  if (mesh.jaeger) {
    const trace = await slowestJaegerTrace(mesh.jaeger);
    console.log(trace ? `Slowest trace in Jaeger (OTLP):\n${formatTraceTree(trace)}` : "Jaeger has no trace through the gateway.");
  } else if (mesh.zipkin) {
    const trace = await slowestTrace(mesh.zipkin);
    if (trace) console.log(`Slowest trace in Zipkin:\n${formatTraceTree(trace)}`);
    else console.log(`Zipkin has no spans: the plugin does not emit them yet (trace context is parsed but not wired in; hook: tracingPluginConfig in tools/mesh/plugin.ts). The apps already forward trace headers.`);
  } else console.log(`Zipkin is not running (${mesh.zipkinError ?? "disabled"}): no trace to show.`);

  const t = mesh.topology;
  const describe = (w: string) => {
    const p = t.pods.find((x) => x.workload.workload === w);
    return p ? `${p.workload.namespace}${p.workload.version ? ` · ${p.workload.version}` : ""}` : "";
  };
  const graph = await writeServiceGraph(edges, OUT, {
    title: "mesh-telemetry-wasm: service graph",
    subtitle: `${mesh.mode === "containers" ? "Envoy sidecar containers, iptables interception, mutual TLS" : "loopback fallback"} · ${RPS} req/s for ${SECONDS} s · istio_requests_total / istio_request_duration_milliseconds / istio_tcp_*, reporter=source`,
    describe,
  });
  console.log(`\nService graph: ${graph.svg.replace(`${ROOT}/`, "")}${graph.png ? ` and ${graph.png.replace(`${ROOT}/`, "")}` : ` (no PNG: ${graph.pngProblem})`}`);

  step("Istio's dashboards: rendering their queries over the run, serving the page, screenshotting it with Chromium");
  dashboards = await showDashboards({ prometheusUrl: mesh.prometheus!.url, topology: t, start: traffic.startedAt / 1000, end: traffic.endedAt / 1000, outDir: OUT });
  console.log(`\n${dashboards.report}`);
  const coverage = await dashboardCoverage({ prometheusUrl: mesh.prometheus!.url, topology: t, start: traffic.startedAt / 1000, end: traffic.endedAt / 1000 });
  const empty = coverage.filter((c) => c.answered.length === 0 || c.error);
  const unexpected = empty.filter((c) => c.error || !(c.key in DEMO_NO_DATA_BY_DESIGN));
  console.log(`\nEvery query of Istio's dashboards over the run (Mesh once; Service for each service and reporter choice): ${coverage.length - empty.length} of ${coverage.length} answer with data.`);
  for (const c of empty.filter((x) => !unexpected.includes(x))) console.log(`  no data by design: ${c.key}: ${DEMO_NO_DATA_BY_DESIGN[c.key]}`);
  for (const c of unexpected) console.log(`  WARNING: no data: ${c.key}${c.error ? `: ${c.error}` : ""}`);
  if (dashboards.pngError) {
    console.error(`\nERROR: no dashboard screenshot: ${dashboards.pngError}`);
    exitCode = 1;
  }

  console.log(`\nPrometheus: ${mesh.prometheus!.url}   (try: sum by (source_workload, destination_workload, response_code) (rate(istio_requests_total{reporter="source"}[1m])))`);
  if (mesh.jaeger) console.log(`Jaeger:     ${mesh.jaeger.url}   (UI: Jaeger's placeholder page in this build; query API: ${mesh.jaeger.url}/api/traces?service=istio-ingressgateway)`);
  else console.log(`Zipkin:     ${mesh.zipkin?.url ?? "not running"}`);
  console.log(`Gateway:    ${mesh.gatewayUrl}/productpage/1`);
  console.log(`Dashboards: ${dashboards.url}`);
  if (mesh.mode === "containers") {
    console.log(`Sidecar configs and logs: build/demo/pods/<pod>/; WasmPlugins: build/demo/deploy/`);
    console.log(`Containers: ${podmanPsCommand()}`);
  }

  shown = true;
  if (hold > 0 && !stop.signal.aborted) {
    step(`mesh stays up with ${HOLD_RPS} req/s of traffic for up to ${(hold / 60).toFixed(0)} min: Ctrl-C here, or \`make demo-down\` elsewhere, to stop`);
    await mesh.drive({ rps: HOLD_RPS, seconds: hold, abort: stop.signal });
  }
} catch (err) {
  if (!stop.signal.aborted) {
    console.error(`\ndemo failed: ${(err as Error).stack ?? err}`);
    exitCode = 1;
  }
} finally {
  await dashboards?.close();
  if (mesh) {
    step(mesh.mode === "containers"
      ? "tearing down: containers, apps, Prometheus, Zipkin, registry, namespaces, bridge"
      : "tearing down: proxies, apps, Prometheus, Zipkin, registry");
    const left = await mesh.down();
    if (left.length === 0) step(mesh.mode === "containers" ? "clean: no namespace, container, link or process of the mesh is left" : "clean: no process of the mesh is left");
    else {
      step(`LEFT BEHIND (run make demo-down): ${left.join("; ")}`);
      exitCode = exitCode || 1;
    }
  }
}
process.exit(exitCode || (stop.signal.aborted && !shown ? 130 : 0));
