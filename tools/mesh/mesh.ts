// The demo mesh: bookinfo-shaped pods (tools/mesh/topology.ts), each a network namespace on a
// bridge with an Envoy container and an app, Istio's iptables interception, the plugin
// delivered from a registry through WasmPlugins, Prometheus scraping every proxy's :15090
// and Zipkin. Where containers or namespaces are unavailable (no root, no podman), the same
// topology runs as processes on loopback with explicit ports and no interception.
//
//   const mesh = await startMesh({ prefix: "mtw", subnet: 0, outDir: "build/demo" });
//   try { await mesh.warmup(); await mesh.drive({ rps: 20, seconds: 30 }); ... }
//   finally { await mesh.down(); }
//
// Every resource is registered for cleanup as soon as it exists; down() removes them in
// reverse order, then sweeps the prefix (containers, marked processes, namespaces, links)
// and reports anything still left.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, httpRequest, sleep, type Envoy } from "../../tests/harness/envoy.ts";
import { serviceHost, startSidecar } from "../../tests/harness/sidecars.ts";
import { startPrometheus, type PrometheusServer } from "../../tests/harness/prometheus-server.ts";
import type { Zipkin } from "../../tests/harness/zipkin.ts";
import { startApp, type AppProcess } from "./apps.ts";
import { leftovers, runningMesh, sweepMesh, writeState, type MeshState } from "./cleanup.ts";
import {
  CONTAINER_CONFIG_DIR, containerLogs, containerProblem, containerRunning, ENVOY_IMAGE, ensureEnvoyImage, removeContainers, runSidecarContainer,
} from "./containers.ts";
import { loopbackSidecar, podBootstrap, type LoopbackPorts, type MeshAddressing } from "./envoy-config.ts";
import { deliverPlugin, type PluginDelivery } from "./plugin.ts";
import { bridgeName, createBridge, createPod, subnetAddress } from "./pods.ts";
import { isRoot, processStartTime, run, setMarker, stepper, which, type Step } from "./sys.ts";
import { createMeshCa, issueWorkloadCert, type MeshCa } from "../../tests/harness/ca.ts";
import { APP_PORT, bookinfo, REDIS_PORT, type PodDef, type Topology } from "./topology.ts";
import { driveOutsideCaller, driveTraffic, type TrafficResult } from "./traffic.ts";
import { REDIS_GET_STARS } from "./apps/redis-wire.ts";
import { startZipkin } from "../../tests/harness/zipkin.ts";
import type { Jaeger } from "../../tests/harness/jaeger.ts";
import { demoTracing, startDemoJaeger } from "./jaeger.ts";

export const ZIPKIN_COLLECTOR_PORT = 9411;

export interface MeshOptions {
  /** Names everything the mesh creates (netns `<prefix>-<pod>`, bridge `<prefix>0`, containers). */
  prefix: string;
  /** Third octet of the mesh subnet 10.77.<subnet>.0/24. */
  subnet: number;
  /** Configs, manifests, logs and the graph go here. */
  outDir: string;
  mode?: "auto" | "containers" | "loopback";
  ratingsFailRate?: number;
  scrapeInterval?: string;
  step?: Step;
  /** Start Zipkin (default true). */
  zipkin?: boolean;
}

export interface PodRuntime {
  def: PodDef;
  /** Where the proxy is reached from the host (pod IP, or 127.0.0.1 on loopback). */
  ip: string;
  netns?: string;
  container?: string;
  /** The proxy process in the loopback fallback. */
  envoy?: Envoy;
  app?: AppProcess;
  /** host:port Prometheus scrapes (pod :15090, or the admin port on loopback). */
  metricsAddress: string;
  configPath?: string;
}

export interface TrafficRun extends TrafficResult {
  rps: number;
  seconds: number;
  /** The plaintext caller from outside the mesh that ran alongside (containers mode). */
  outside?: { http: number; httpOk: number; tcp: number; tcpOk: number };
}

export class Mesh {
  readonly topology: Topology;
  mode: "containers" | "loopback" = "containers";
  modeReason = "";
  pods: PodRuntime[] = [];
  prometheus?: PrometheusServer;
  zipkin?: Zipkin;
  /** Instead of Zipkin with DEMO_TRACING=jaeger (tools/mesh/jaeger.ts). */
  jaeger?: Jaeger;
  zipkinError?: string;
  plugin?: PluginDelivery;
  gatewayUrl = "";
  bridge?: { name: string; ip: string };
  lastTraffic?: TrafficRun;
  /** The mesh CA (containers mode): every sidecar-to-sidecar hop is mutual TLS with its certificates. */
  ca?: MeshCa;
  private cleanups: Array<{ what: string; run: () => Promise<unknown> }> = [];
  private downPromise?: Promise<string[]>;

  constructor(readonly opts: MeshOptions, readonly step: Step) {
    this.topology = bookinfo({ ratingsFailRate: opts.ratingsFailRate });
  }

  onDown(what: string, fn: () => Promise<unknown>): void {
    this.cleanups.push({ what, run: fn });
  }

  /** Tears everything down (once; later calls wait for the first). Returns what is still left (empty when clean). */
  down(): Promise<string[]> {
    this.downPromise ??= (async () => {
      for (const c of this.cleanups.reverse()) {
        try {
          await c.run();
        } catch (err) {
          this.step(`cleanup: ${c.what}: ${(err as Error).message.split("\n")[0]}`);
        }
      }
      await sweepMesh(this.opts.prefix);
      return leftovers(this.opts.prefix);
    })();
    return this.downPromise;
  }

  pod(key: string): PodRuntime {
    const p = this.pods.find((x) => x.def.key === key);
    if (!p) throw new Error(`no pod ${key}`);
    return p;
  }

  /** A few requests through the gateway so every edge's series exist, then wait until Prometheus has them. */
  async warmup(requests = 8): Promise<void> {
    for (let i = 0; i < requests; i++) {
      const res = await httpRequest(`${this.gatewayUrl}/productpage/${i}`);
      if (res.status !== 200) throw new Error(`warm-up request through the gateway: HTTP ${res.status} ${res.body.slice(0, 300)}`);
    }
    await this.prometheus?.waitForScrapes(2);
  }

  /**
   * Bounded load through the gateway: `rps` requests per second for `seconds`. In containers
   * mode a plaintext caller from outside the mesh (the host) runs alongside, straight to
   * productpage and redis, as PERMISSIVE mode admits (driveOutsideCaller).
   */
  async drive(o: { rps: number; seconds: number; onProgress?: (r: TrafficResult, elapsedMs: number) => void; abort?: AbortSignal }): Promise<TrafficRun> {
    const outside = this.mode === "containers"
      ? driveOutsideCaller({
        httpUrl: `http://${this.pod("productpage-v1").ip}:${APP_PORT}/productpage/outside-{i}`,
        tcp: { host: this.pod("redis-v1").ip, port: REDIS_PORT, payload: REDIS_GET_STARS },
        durationMs: o.seconds * 1000,
        abort: o.abort,
      })
      : undefined;
    const r = await driveTraffic({ url: `${this.gatewayUrl}/productpage/{i}`, rps: o.rps, durationMs: o.seconds * 1000, onProgress: o.onProgress, abort: o.abort });
    this.lastTraffic = { ...r, rps: o.rps, seconds: o.seconds, outside: await outside };
    return this.lastTraffic;
  }
}

async function preflight(mode: MeshOptions["mode"], prefix: string): Promise<{ mode: "containers" | "loopback"; reason: string }> {
  if (mode === "loopback") return { mode, reason: "asked for (MESH_MODE=loopback)" };
  const problem = await (async () => {
    if (!isRoot()) return "not running as root (network namespaces and iptables need it)";
    for (const tool of ["ip", "iptables-restore", "iptables-save"]) if (!which(tool)) return `${tool} is not installed (apt-get install -y iproute2 iptables)`;
    const c = containerProblem();
    if (c) return c;
    const probe = `${prefix}-probe`;
    const r = await run("ip", ["netns", "add", probe], { allowFail: true });
    if (r.code !== 0) return `cannot create network namespaces: ${r.stderr.trim()}`;
    await run("ip", ["netns", "del", probe], { allowFail: true });
    return undefined;
  })();
  if (!problem) return { mode: "containers", reason: "root, iproute2, iptables, podman, buildah, runc" };
  if (mode === "containers") throw new Error(`containers mode unavailable: ${problem}`);
  return { mode: "loopback", reason: problem };
}

export async function startMesh(opts: MeshOptions): Promise<Mesh> {
  const step = opts.step ?? stepper();
  const mesh = new Mesh(opts, step);
  const other = runningMesh(opts.prefix);
  if (other) throw new Error(`a mesh '${opts.prefix}' is already running (pid ${other.pid}, since ${other.startedAt}); stop it first (make demo-down)`);
  setMarker(opts.prefix);
  try {
    const pre = await preflight(opts.mode ?? "auto", opts.prefix);
    mesh.mode = pre.mode;
    mesh.modeReason = pre.reason;
    step(mesh.mode === "containers"
      ? `mode: containers (${pre.reason})`
      : `mode: LOOPBACK FALLBACK: ${pre.reason}. Running the same pods as processes on 127.0.0.1 with explicit ports, without namespaces, containers or iptables interception`);
    const removed = await sweepMesh(opts.prefix);
    if (removed.length > 0) step(`removed leftovers of an earlier run: ${removed.join(", ")}`);
    mkdirSync(opts.outDir, { recursive: true });
    const state: MeshState = { prefix: opts.prefix, pid: process.pid, pidStart: processStartTime(process.pid), mode: mesh.mode, startedAt: new Date().toISOString(), outDir: opts.outDir };
    writeState(state);
    if (mesh.mode === "containers") await startContainerMesh(mesh);
    else await startLoopbackMesh(mesh);
    writeState({ ...state, urls: { prometheus: mesh.prometheus?.url ?? "", zipkin: mesh.zipkin?.url ?? "", gateway: mesh.gatewayUrl } });
    return mesh;
  } catch (err) {
    step(`start-up failed: ${(err as Error).message.split("\n")[0]}; tearing down`);
    const left = await mesh.down();
    step(left.length === 0 ? "torn down: nothing of the mesh is left" : `LEFT BEHIND (make demo-down): ${left.join("; ")}`);
    throw err;
  }
}

/** Starts Zipkin in the background (it takes a while); the mesh waits for it at the end. */
function zipkinInBackground(mesh: Mesh, uiPort: number | undefined, collector?: { ip: string; port: number }): Promise<void> {
  if (mesh.opts.zipkin === false) return Promise.resolve();
  if (demoTracing() === "jaeger") {
    return startDemoJaeger(collector ?? { ip: "127.0.0.1", port: uiPort! }).then((j) => {
      mesh.jaeger = j;
      mesh.onDown("Jaeger", () => j.stop());
    }, (err) => void (mesh.zipkinError = (err as Error).message.split("\n")[0]));
  }
  return startZipkin({ port: uiPort, collector }).then((z) => {
    mesh.zipkin = z;
    mesh.onDown("Zipkin", () => z.stop());
  }, (err) => {
    mesh.zipkinError = (err as Error).message.split("\n")[0];
  });
}

async function startContainerMesh(mesh: Mesh): Promise<void> {
  const { prefix, subnet, outDir } = mesh.opts;
  const t = mesh.topology;
  const step = mesh.step;

  const bridgeIp = subnetAddress(subnet, 1);
  // The namespaces, veths and bridge are removed by the final sweep of down(), after the
  // containers and apps inside them have stopped.
  const hostRules = await createBridge(prefix, subnet);
  mesh.bridge = { name: bridgeName(prefix), ip: bridgeIp };
  step(`bridge ${bridgeName(prefix)} ${bridgeIp}/24${hostRules.length ? `; the host's policy drops bridged traffic, so added: iptables ${hostRules.join("; ")}` : ""}`);

  const zipkinReady = zipkinInBackground(mesh, undefined, { ip: bridgeIp, port: ZIPKIN_COLLECTOR_PORT });
  step(`${demoTracing() === "jaeger" ? "Jaeger" : "Zipkin"} starting in the background (collector ${bridgeIp}:${ZIPKIN_COLLECTOR_PORT})`);

  const collector = { cluster: "zipkin", path: "/api/v2/spans", address: `${bridgeIp}:${ZIPKIN_COLLECTOR_PORT}` };
  mesh.plugin = await deliverPlugin(outDir, collector, step, true);
  const registry = mesh.plugin.registry;
  mesh.onDown("registry", () => registry.stop());

  const t0 = Date.now();
  const image = await ensureEnvoyImage();
  step(`Envoy image ${ENVOY_IMAGE}: ${image === "cached" ? "already built" : `built from .venv's envoy with buildah (${((Date.now() - t0) / 1000).toFixed(1)} s)`}`);

  const podIp = (key: string) => subnetAddress(subnet, t.pods.find((p) => p.key === key)!.ipOctet);
  const serviceIp = (name: string) => subnetAddress(subnet, t.services.find((s) => s.name === name)!.vipOctet);
  const hosts = (pod: PodDef) => [
    "127.0.0.1 localhost",
    `${podIp(pod.key)} ${pod.workload.workload}`,
    ...t.services.map((s) => `${serviceIp(s.name)} ${s.name} ${s.name}.${s.namespace} ${s.name}.${s.namespace}.svc ${serviceHost(s)}`),
  ];
  for (const [i, def] of t.pods.entries()) {
    const netns = `${prefix}-${def.key}`;
    await createPod(prefix, { netns, ip: podIp(def.key), hostVeth: `${prefix}v${i}`, intercept: def.kind === "sidecar", hosts: hosts(def) });
    mesh.pods.push({ def, ip: podIp(def.key), netns, metricsAddress: `${podIp(def.key)}:15090` });
  }
  step(`pods: ${mesh.pods.map((p) => `${p.netns} ${p.ip}`).join(", ")}; istio-iptables rules in each sidecar pod (15001 out, 15006 in, uid 1337 excluded)`);

  const portOf = (service: string) => t.services.find((s) => s.name === service)!.port;
  await Promise.all(mesh.pods.filter((x) => x.def.app).map(async (p, i) => {
    const upstreams = Object.fromEntries(p.def.app!.calls.map((s) => [s, { url: `http://${s}:${portOf(s)}` }]));
    const tcpUpstreams = Object.fromEntries((p.def.app!.tcpCalls ?? []).map((s) => [s, { host: s, port: portOf(s) }]));
    const app = await startApp({ pod: p.def, listen: `0.0.0.0:${portOf(p.def.service!)}`, upstreams, tcpUpstreams, netns: p.netns, seed: i + 1 });
    p.app = app;
    mesh.onDown(`app ${p.def.key}`, () => app.stop());
  }));
  const calls = [...new Set(t.pods.flatMap((p) => [...(p.app?.calls ?? []).map((s) => `http://${s}:${portOf(s)}`), ...(p.app?.tcpCalls ?? []).map((s) => `tcp://${s}:${portOf(s)}`)]))];
  step(`apps listening in their pods (${mesh.pods.filter((p) => p.app).map((p) => `${p.def.key} :${portOf(p.def.service!)}`).join(", ")}), calling ${calls.join(", ")}`);

  // The mesh CA, as istiod's: a root now, a 24 h certificate per workload with its SPIFFE id.
  mesh.ca = createMeshCa(join(outDir, "ca"));

  const addressing: MeshAddressing = { podIp, serviceIp, zipkin: { address: bridgeIp, port: ZIPKIN_COLLECTOR_PORT } };
  for (const p of mesh.pods) {
    const dir = join(outDir, "pods", p.def.key);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    p.configPath = join(dir, "envoy.json");
    // The proxy (uid 1337) reads its certificate files from the mounted config directory.
    const cert = issueWorkloadCert(mesh.ca, { namespace: p.def.workload.namespace, serviceAccount: p.def.serviceAccount, dir: join(dir, "certs"), owner: 1337 });
    const certs = { dir: `${CONTAINER_CONFIG_DIR}/certs`, spiffeId: cert.spiffeId };
    writeFileSync(p.configPath, JSON.stringify(podBootstrap(t, p.def, addressing, mesh.plugin.plugins, certs), null, 2));
    const name = `${prefix}-${p.def.key}`;
    mesh.onDown(`container ${name}`, async () => {
      if (!p.container) return;
      writeFileSync(join(dir, "envoy.log"), await containerLogs(name));
      await removeContainers([name]);
    });
    await runSidecarContainer({
      name, netns: p.netns!, configDir: dir, readOnlyMounts: [mesh.plugin.cacheDir], prefix,
      envoyArgs: ["--concurrency", "1", "--disable-hot-restart", "--log-level", "warning", "--drain-time-s", "1"],
    });
    p.container = name;
  }
  await Promise.all(mesh.pods.map((p) => waitReady(p)));
  step(`proxies ready: ${mesh.pods.length} Envoy containers (uid 1337, --concurrency 1), each /healthz/ready on :15021 LIVE; mutual TLS between sidecars with certificates from the mesh CA (${mesh.ca.rootCert.replace(`${process.cwd()}/`, "")}), SPIFFE ids ${mesh.pods.map((p) => `sa/${p.def.serviceAccount}`).filter((v, i, a) => a.indexOf(v) === i).join(", ")}`);

  mesh.gatewayUrl = `http://${podIp("ingressgateway")}:${t.gatewayPort}`;
  await startScraping(mesh);
  await zipkinReady;
  reportZipkin(mesh);
}

async function waitReady(p: PodRuntime): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const res = await httpRequest(`http://${p.ip}:15021/healthz/ready`, { timeoutMs: 1000 });
      if (res.status === 200 && res.body.trim() === "LIVE") return;
    } catch {
      // not listening yet
    }
    if (p.container && !(await containerRunning(p.container))) {
      throw new Error(`${p.container}: Envoy exited:\n${(await containerLogs(p.container)).slice(-4000)}`);
    }
    await sleep(200);
  }
  throw new Error(`${p.container}: not ready within 60 s:\n${p.container ? (await containerLogs(p.container)).slice(-4000) : ""}`);
}

async function startScraping(mesh: Mesh): Promise<void> {
  const prometheus = await startPrometheus(
    mesh.pods.map((p) => ({ address: p.metricsAddress, labels: { pod: p.def.workload.workload, namespace: p.def.workload.namespace } })),
    mesh.opts.scrapeInterval ?? "2s",
  );
  mesh.prometheus = prometheus;
  mesh.onDown("Prometheus", () => prometheus.stop());
  mesh.step(`Prometheus ${prometheus.url} scraping ${mesh.pods.map((p) => p.metricsAddress).join(", ")} every ${mesh.opts.scrapeInterval ?? "2s"}`);
}

function reportZipkin(mesh: Mesh): void {
  if (mesh.jaeger) mesh.step(`Jaeger ${mesh.jaeger.url} ready, taking OTLP on the collector address`);
  else if (mesh.zipkin) mesh.step(`Zipkin ${mesh.zipkin.url} ready`);
  else if (mesh.opts.zipkin !== false) mesh.step(`Zipkin did not start (${mesh.zipkinError}); going on without traces`);
}

async function startLoopbackMesh(mesh: Mesh): Promise<void> {
  const { outDir } = mesh.opts;
  const t = mesh.topology;
  const step = mesh.step;

  const zipkinPort = await freePort();
  const zipkinReady = zipkinInBackground(mesh, zipkinPort);
  step(`${demoTracing() === "jaeger" ? "Jaeger" : "Zipkin"} starting in the background on 127.0.0.1:${zipkinPort}`);
  const collector = { cluster: "zipkin", path: "/api/v2/spans", address: `127.0.0.1:${zipkinPort}` };
  mesh.plugin = await deliverPlugin(outDir, collector, step, false);
  const registry = mesh.plugin.registry;
  mesh.onDown("registry", () => registry.stop());

  const ports: Record<string, LoopbackPorts> = {};
  for (const def of t.pods) {
    const outbound: Record<string, number> = {};
    for (const s of def.app?.calls ?? []) outbound[s] = await freePort();
    ports[def.key] = def.kind === "gateway"
      ? { gateway: await freePort(), outbound }
      : { app: await freePort(), inbound: await freePort(), outbound };
  }
  for (const def of t.pods) mesh.pods.push({ def, ip: "127.0.0.1", metricsAddress: "" });
  await Promise.all(mesh.pods.filter((x) => x.def.app).map(async (p, i) => {
    const def = p.def;
    const upstreams = Object.fromEntries(def.app!.calls.map((s) => [s, { url: `http://127.0.0.1:${ports[def.key].outbound[s]}`, host: `${s}:${APP_PORT}` }]));
    const app = await startApp({ pod: def, listen: `127.0.0.1:${ports[def.key].app}`, upstreams, seed: i + 1 });
    p.app = app;
    mesh.onDown(`app ${def.key}`, () => app.stop());
  }));
  step(`apps on 127.0.0.1: ${mesh.pods.filter((p) => p.app).map((p) => `${p.def.key} :${ports[p.def.key].app}`).join(", ")}`);
  for (const p of mesh.pods) {
    const sidecar = loopbackSidecar(t, p.def, ports, { address: "127.0.0.1", port: zipkinPort }, mesh.plugin.plugins);
    const { envoy } = await startSidecar({ ...sidecar, name: `${mesh.opts.prefix}-${p.def.key}`, concurrency: 1 });
    p.envoy = envoy;
    p.metricsAddress = `127.0.0.1:${envoy.adminPort}`;
    mesh.onDown(`proxy ${p.def.key}`, () => envoy.stop());
  }
  step(`proxies: ${mesh.pods.length} Envoy processes on loopback (--concurrency 1), admin ports ${mesh.pods.map((p) => p.metricsAddress.split(":")[1]).join(", ")}`);
  mesh.gatewayUrl = `http://127.0.0.1:${ports.ingressgateway.gateway}`;
  await startScraping(mesh);
  await zipkinReady;
  reportZipkin(mesh);
}
