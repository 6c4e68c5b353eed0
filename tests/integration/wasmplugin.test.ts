// The plugin as Istio ships it: OCI image -> registry -> WasmPlugin manifests -> a sidecar.
// `tools/image.ts` builds the image and pushes it (skopeo) to a throwaway docker-registry;
// `tools/manifests.ts` renders deploy/*.yaml with its reference and digest; the rendered
// manifests pass Istio's CRD validation and broken copies do not; the local loader
// (tests/harness/wasmplugin.ts, istiod + istio-agent in miniature) pulls the module over the
// registry API, and real Envoy configured from the manifests counts istio_requests_total and
// TCP metrics. Pull failures give istio-agent's RBAC substitutes: FAIL_OPEN keeps serving,
// FAIL_CLOSE answers 403.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ROOT, eventually, freePort, httpListener, httpRequest, startEnvoy, startUpstream, tcpListener,
  type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { serviceCluster, sidecarNode } from "../harness/sidecars.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";
import { OCI_LAYER_GZIP, pushImage, startRegistry, type Registry } from "../harness/registry.ts";
import { renderManifests } from "../harness/tools.ts";
import {
  filtersFor, loadWasmPlugin, loadWasmPluginFile, parseWasmPlugins, pullWasmModule,
  WasmPluginError, WasmPullError, type LoadedWasmPlugin,
} from "../harness/wasmplugin.ts";

const BUILD = join(ROOT, "build");
const reviews = { workload: "reviews-v1", namespace: "bookinfo", app: "reviews", version: "v1" };

let registry: Registry;
let work: string;
let cacheDir: string;
let deployDir: string;
let wasm: Buffer;
let digest: string; // sha256:<hex> of the pushed manifest
let imageRef: string;
const saved: Record<string, Buffer | undefined> = {};

function tsx(script: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000) {
  return spawnSync(process.execPath, ["--import", "tsx", script, ...args], { cwd: ROOT, env, encoding: "utf8", timeout: timeoutMs });
}

before(async () => {
  assert.ok(existsSync(join(BUILD, "plugin.wasm")), "build/plugin.wasm missing: run `make build` first");
  // tools/image.ts rewrites build/image.ref (with this run's registry): put the user's back afterwards.
  for (const f of ["image.ref", "image.digest"]) saved[f] = existsSync(join(BUILD, f)) ? readFileSync(join(BUILD, f)) : undefined;
  work = mkdtempSync(join(tmpdir(), "wasmplugin-test-"));
  cacheDir = join(work, "cache");
  deployDir = join(work, "deploy");
  registry = await startRegistry();

  wasm = readFileSync(join(BUILD, "plugin.wasm"));
  const built = tsx("tools/image.ts", [], { ...process.env, REGISTRY: registry.address });
  assert.equal(built.status, 0, `tools/image.ts failed:\n${built.stdout}\n${built.stderr}`);
  assert.ok(readFileSync(join(BUILD, "plugin.wasm")).equals(wasm), "build/plugin.wasm changed while the image was built (a concurrent make build?)");
  digest = readFileSync(join(BUILD, "image.digest"), "utf8").trim();
  imageRef = readFileSync(join(BUILD, "image.ref"), "utf8").trim();
  renderManifests({ ref: imageRef, digest }, deployDir);
});

after(async () => {
  await registry?.stop();
  for (const [f, content] of Object.entries(saved)) {
    if (content) writeFileSync(join(BUILD, f), content);
    else rmSync(join(BUILD, f), { force: true });
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

test("make manifests fills the pushed image reference and its manifest digest (hex) into every template", () => {
  assert.match(imageRef, /^127\.0\.0\.1:\d+\/mesh-telemetry-wasm:/);
  assert.match(digest, /^sha256:[a-f0-9]{64}$/);
  for (const f of ["wasmplugin-http.yaml", "wasmplugin-tcp.yaml", "trafficextension-http.yaml", "trafficextension-tcp.yaml", "telemetry-disable-native.yaml", "proxyconfig-stat-tags.yaml"]) {
    const text = readFileSync(join(deployDir, f), "utf8");
    assert.ok(!text.includes("{{"), `${f} still has a placeholder`);
  }
  const http = readFileSync(join(deployDir, "wasmplugin-http.yaml"), "utf8");
  assert.equal(http.split(`url: oci://${imageRef}\n`).length - 1, 2);
  assert.equal(http.split(`sha256: "${digest.slice(7)}"\n`).length - 1, 2);
  const cli = tsx("tools/manifests.ts", ["--out", join(work, "cli"), "--image", imageRef, "--digest", digest]);
  assert.equal(cli.status, 0, cli.stderr);
  assert.equal(readFileSync(join(work, "cli", "wasmplugin-tcp.yaml"), "utf8"), readFileSync(join(deployDir, "wasmplugin-tcp.yaml"), "utf8"));
  const noRegistry = tsx("tools/manifests.ts", ["--out", join(work, "cli"), "--image", "mesh-telemetry-wasm:0.1.0", "--digest", digest]);
  assert.equal(noRegistry.status, 1);
  assert.match(noRegistry.stderr, /names no registry/);
});

test("rendered manifests pass validation against Istio's CRDs; broken copies fail", { timeout: 600_000 }, () => {
  // The first run builds the Go validator (minutes on a cold module cache); then it is cached.
  const ok = tsx("tools/validate-manifests.ts", [deployDir], process.env, 600_000);
  assert.equal(ok.status, 0, `${ok.stdout}\n${ok.stderr}`);
  assert.match(ok.stdout, /8 document\(s\), 0 invalid/);
  for (const kind of ["WasmPlugin istio-system/mesh-telemetry-client", "WasmPlugin istio-system/mesh-telemetry-server",
    "WasmPlugin istio-system/mesh-telemetry-tcp", "TrafficExtension istio-system/mesh-telemetry-client",
    "TrafficExtension istio-system/mesh-telemetry-server", "TrafficExtension istio-system/mesh-telemetry-tcp",
    "Telemetry istio-system/mesh-default", "IstioOperator istio-system/mesh-telemetry-stat-tags"]) {
    assert.ok(ok.stdout.includes(kind), `${kind} not reported valid:\n${ok.stdout}`);
  }

  const http = readFileSync(join(deployDir, "wasmplugin-http.yaml"), "utf8");
  const tcp = readFileSync(join(deployDir, "wasmplugin-tcp.yaml"), "utf8");
  const stats = readFileSync(join(deployDir, "proxyconfig-stat-tags.yaml"), "utf8");
  const teTcp = readFileSync(join(deployDir, "trafficextension-tcp.yaml"), "utf8");
  const broken: Record<string, [string, RegExp]> = {
    // A TrafficExtension keeps placement at the top and the module under wasm: not the other way round.
    "te-url-on-top.yaml": [teTcp.replace(/^ {4}url: (.*)\n/m, "").replace("  phase: STATS\n", "  phase: STATS\n  url: oci://x/y:1\n"), /spec\.url: unknown field/],
    "te-wasm-and-lua.yaml": [teTcp.replace("  wasm:\n", "  lua: {inlineCode: 'function envoy_on_request(h) end'}\n  wasm:\n"), /exactly one of wasm or lua must be set/],
    "te-bad-type.yaml": [teTcp.replace(/^ {4}type: NETWORK$/m, "    type: TCP"), /spec\.wasm\.type: Unsupported value: "TCP"/],
    "fail-sometimes.yaml": [http.replaceAll("failStrategy: FAIL_OPEN", "failStrategy: FAIL_SOMETIMES"), /spec\.failStrategy: Unsupported value: "FAIL_SOMETIMES"/],
    "phase-7.yaml": [http.replaceAll("phase: STATS", "phase: 7"), /spec\.phase: Invalid value: "integer"/],
    "no-url.yaml": [tcp.replace(/^ {2}url: .*\n/m, ""), /spec\.url: Required value/],
    "bad-scheme.yaml": [tcp.replace("url: oci://", "url: gopher://"), /url must have schema one of \[http, https, file, oci\]/],
    "typo-stat-tags.yaml": [stats.replace(/^( +)extraStatTags:/m, "$1extraStatTag:"), /unknown field "extraStatTag"/],
  };
  const dir = join(work, "broken");
  mkdirSync(dir, { recursive: true });
  const files = Object.entries(broken).map(([name, [text]]) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  });
  const bad = tsx("tools/validate-manifests.ts", files, process.env, 600_000);
  assert.equal(bad.status, 1, `${bad.stdout}\n${bad.stderr}`);
  for (const [name, [, message]] of Object.entries(broken)) {
    const block = bad.stdout.split(/\n(?=\S)/).filter((b) => b.includes(`/${name}:`)).join("\n");
    assert.match(block, /^INVALID /m, `${name} was not refused:\n${bad.stdout}`);
    assert.match(block, message, `${name}:\n${block}`);
  }
});

test("the loader pulls the image over the registry API: plugin.wasm byte-identical to build/plugin.wasm", async () => {
  const loaded = await loadWasmPluginFile(join(deployDir, "wasmplugin-http.yaml"), { cacheDir });
  assert.deepEqual(loaded.map((p) => p.resourceName), ["istio-system.mesh-telemetry-client", "istio-system.mesh-telemetry-server"]);
  for (const p of loaded) {
    assert.equal(p.pullError, undefined);
    assert.equal(p.module?.manifestDigest, digest);
    assert.ok(p.module?.bytes.equals(wasm), "extracted module differs from build/plugin.wasm");
    assert.ok(readFileSync(p.module!.path).equals(wasm));
  }
  // imagePullPolicy IfNotPresent with a pinned digest: the second plugin is served from the cache.
  assert.equal(loaded[0].module?.fromCache, false);
  assert.equal(loaded[1].module?.fromCache, true);
  // Pulling by digest works too, and Always pulls again.
  const byDigest = await pullWasmModule(`oci://${imageRef.replace(/:[^:/]+$/, "")}@${digest}`, { cacheDir, pullPolicy: "Always" });
  assert.equal(byDigest.fromCache, false);
  assert.ok(byDigest.bytes.equals(wasm));
});

test("WasmPlugin fields become Envoy filter config the way istiod and istio-agent write it", async () => {
  const [client, server] = await loadWasmPluginFile(join(deployDir, "wasmplugin-http.yaml"), { cacheDir });
  const [tcp] = await loadWasmPluginFile(join(deployDir, "wasmplugin-tcp.yaml"), { cacheDir });
  assert.equal(client.kind, "http");
  assert.deepEqual(client.directions, ["outbound"]);
  assert.deepEqual(server.directions, ["inbound"]);
  assert.equal(client.phase, "STATS");
  const c = client.filter.typed_config;
  assert.equal(c["@type"], "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm");
  assert.equal(c.config.name, "istio-system.mesh-telemetry-client");
  assert.equal(c.config.root_id, "stats_outbound");
  assert.equal(c.config.failure_policy, "FAIL_OPEN");
  assert.deepEqual(JSON.parse(c.config.configuration.value), { reporter: "UNSPECIFIED" });
  assert.deepEqual(JSON.parse(server.filter.typed_config.config.configuration.value), { reporter: "UNSPECIFIED", disable_host_header_fallback: true });
  assert.equal(c.config.vm_config.runtime, "envoy.wasm.runtime.v8");
  assert.equal(c.config.vm_config.code.local.filename, client.module?.path);
  assert.equal(tcp.kind, "network");
  assert.equal(tcp.filter.typed_config["@type"], "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm");
  assert.deepEqual(tcp.directions, ["inbound", "outbound"]);

  // vmConfig.env, priority, phase order and ports, on a manifest of our own.
  const [a, b] = parseWasmPlugins(`
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: a, namespace: ns}
spec:
  url: oci://${imageRef}
  failStrategy: FAIL_RELOAD
  vmConfig:
    env:
    - {name: MODE, value: strict}
    - {name: POD_NAME, valueFrom: HOST}
  match: [{mode: SERVER, ports: [{number: 9080}]}]
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: b, namespace: ns}
spec: {url: "oci://${imageRef}", phase: AUTHN, priority: 10}
`, "inline.yaml");
  const la = await loadWasmPlugin(a, { cacheDir });
  const lb = await loadWasmPlugin(b, { cacheDir });
  const vm = la.filter.typed_config.config.vm_config;
  assert.deepEqual(vm.environment_variables, { key_values: { MODE: "strict" }, host_env_keys: ["POD_NAME"] });
  assert.equal(la.filter.typed_config.config.failure_policy, "FAIL_RELOAD");
  assert.equal(la.filter.typed_config.config.configuration, undefined, "no pluginConfig: no configuration");
  assert.equal(lb.filter.typed_config.config.failure_policy, "FAIL_CLOSED", "failStrategy defaults to FAIL_CLOSE");
  assert.deepEqual(filtersFor([la, lb, client], "http", "inbound", 9080).map((f) => f.name), ["ns.b", "ns.a"]);
  assert.deepEqual(filtersFor([la, lb, client], "http", "inbound", 8080).map((f) => f.name), ["ns.b"]);
  assert.deepEqual(filtersFor([la, lb, client], "http", "outbound").map((f) => f.name), ["ns.b", "istio-system.mesh-telemetry-client"]);
});

test("TrafficExtension and WasmPlugin manifests load into the same Envoy filters", async () => {
  for (const proto of ["http", "tcp"]) {
    const wasmPlugins = await loadWasmPluginFile(join(deployDir, `wasmplugin-${proto}.yaml`), { cacheDir });
    const extensions = await loadWasmPluginFile(join(deployDir, `trafficextension-${proto}.yaml`), { cacheDir });
    assert.equal(extensions.length, wasmPlugins.length);
    assert.ok(extensions.length > 0);
    for (const [i, te] of extensions.entries()) {
      assert.equal(te.pullError, undefined);
      assert.deepEqual(
        { filter: te.filter, kind: te.kind, directions: te.directions, phase: te.phase },
        { filter: wasmPlugins[i].filter, kind: wasmPlugins[i].kind, directions: wasmPlugins[i].directions, phase: wasmPlugins[i].phase },
        `${te.resourceName}: the TrafficExtension gives the WasmPlugin's filter`,
      );
    }
  }
  const te = (wasm: string, top = "") => `apiVersion: extensions.istio.io/v1alpha1\nkind: TrafficExtension\nmetadata: {name: t, namespace: ns}\nspec:\n${top}${wasm}`;
  const cases: Array<[string, RegExp]> = [
    [te("  lua: {inlineCode: x}\n"), /^case\.yaml:1: TrafficExtension ns\/t: spec\.lua: a Lua extension: valid in Istio, but the local loader only loads Wasm/],
    [te("", "  phase: STATS\n"), /spec\.wasm: required/],
    [te(`  wasm: {url: oci://${imageRef}, phase: STATS}\n`), /spec\.wasm\.phase: unknown field \(phase is spec\.phase in a TrafficExtension\)/],
    [te(`  wasm: {url: oci://${imageRef}, failStrategy: 3}\n`), /spec\.wasm\.failStrategy: expected one of FAIL_CLOSE, FAIL_OPEN, FAIL_RELOAD/],
    [te(`  wasm: {url: oci://${imageRef}}\n`, "  targetRefs: [{kind: Gateway, name: gw}]\n"), /spec\.targetRefs: valid in Istio but not supported by the local loader/],
  ];
  for (const [text, message] of cases) assert.throws(() => parseWasmPlugins(text, "case.yaml"), (e: Error) => e instanceof WasmPluginError && message.test(e.message), text);
});

for (const manifestKind of ["wasmplugin", "trafficextension"]) test(`Envoy configured from the ${manifestKind} manifests counts istio_requests_total and TCP metrics`, async () => {
  const plugins: LoadedWasmPlugin[] = [
    ...await loadWasmPluginFile(join(deployDir, `${manifestKind}-http.yaml`), { cacheDir }),
    ...await loadWasmPluginFile(join(deployDir, `${manifestKind}-tcp.yaml`), { cacheDir }),
  ];
  assert.ok(plugins.every((p) => p.pullError === undefined), plugins.map((p) => p.pullError).join("\n"));
  const upstream: Upstream = await startUpstream();
  const backend = net.createServer((s) => s.on("data", (d) => s.write(d)).on("error", () => {}));
  await new Promise<void>((ok) => backend.listen(0, "127.0.0.1", ok));
  const [outbound, inbound, tcpIn] = [await freePort(), await freePort(), await freePort()];
  let envoy: Envoy | undefined;
  try {
    envoy = await startEnvoy({
      name: "wasmplugin",
      node: sidecarNode(reviews),
      listeners: [
        httpListener({ name: "outbound_ratings", port: outbound, direction: "OUTBOUND", cluster: "outbound|80||ratings.bookinfo.svc.cluster.local", filters: filtersFor(plugins, "http", "outbound") }),
        httpListener({ name: "virtualInbound", port: inbound, direction: "INBOUND", cluster: "inbound|9080||", filters: filtersFor(plugins, "http", "inbound") }),
        tcpListener({ name: "inbound_tcp", port: tcpIn, direction: "INBOUND", cluster: "inbound|27017||", filters: filtersFor(plugins, "network", "inbound") }),
      ],
      clusters: [
        serviceCluster("outbound|80||ratings.bookinfo.svc.cluster.local", { name: "ratings", namespace: "bookinfo" }, [{ port: upstream.port }]),
        serviceCluster("inbound|9080||", { name: "reviews", namespace: "bookinfo" }, [{ port: upstream.port }]),
        serviceCluster("inbound|27017||", { name: "reviews", namespace: "bookinfo" }, [{ port: (backend.address() as net.AddressInfo).port }]),
      ],
    });
    for (let i = 0; i < 5; i++) assert.equal((await httpRequest(`http://127.0.0.1:${outbound}/ratings/${i}`)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await httpRequest(`http://127.0.0.1:${inbound}/reviews/${i}`)).status, 200);
    await new Promise<void>((ok, fail) => {
      const s = net.connect(tcpIn, "127.0.0.1", () => s.end("ping"));
      s.on("data", () => {});
      s.on("close", () => ok());
      s.on("error", fail);
    });
    const samples = parsePrometheus(await envoy.prometheus());
    assert.equal(sum(select(samples, "istio_requests_total", { reporter: "source", response_code: "200" })), 5);
    assert.equal(sum(select(samples, "istio_requests_total", { reporter: "destination", response_code: "200" })), 3);
    assert.ok(select(samples, "istio_requests_total", { reporter: "source" }).every((s) => s.labels.source_workload === "reviews-v1"));
    await eventually("istio_tcp_connections_closed_total", async () => {
      const tcpSamples = parsePrometheus(await envoy!.prometheus());
      return sum(select(tcpSamples, "istio_tcp_connections_closed_total", { reporter: "destination" })) === 1 ? true : undefined;
    });
    assert.match(await envoy.admin("/config_dump?resource=static_listeners"), /istio-system\.mesh-telemetry-server/);
  } finally {
    await envoy?.stop();
    await upstream.close();
    backend.close();
  }
});

test("bad inputs fail with a clear message: wrong digest, unreachable registry, no plugin.wasm, not Wasm, wrong layer type", async () => {
  const url = `oci://${imageRef}`;
  await assert.rejects(pullWasmModule(url, { cacheDir, sha256: "0".repeat(64) }), (e: Error) =>
    e instanceof WasmPullError && e.message === `module downloaded from ${url} has checksum ${digest.slice(7)}, which does not match: ${"0".repeat(64)}`);

  const deadPort = await freePort();
  await assert.rejects(pullWasmModule(`oci://127.0.0.1:${deadPort}/mesh-telemetry-wasm:0.1.0`, { cacheDir, timeoutMs: 3000 }), (e: Error) =>
    e instanceof WasmPullError && /registry 127\.0\.0\.1:\d+ unreachable \(ECONNREFUSED\)/.test(e.message));

  await assert.rejects(pullWasmModule(`oci://${registry.address}/mesh-telemetry-wasm:missing`, { cacheDir }), (e: Error) =>
    e instanceof WasmPullError && /not found in registry/.test(e.message));

  await pushImage(registry.address, "no-plugin", "1", { files: { "module.wasm": wasm, "README": Buffer.from("hi") } });
  await assert.rejects(pullWasmModule(`oci://${registry.address}/no-plugin:1`, { cacheDir }), (e: Error) =>
    e instanceof WasmPullError && /plugin\.wasm not found in the archive \(the last layer holds: module\.wasm, README\)/.test(e.message));

  await pushImage(registry.address, "not-wasm", "1", { files: { "plugin.wasm": Buffer.from("#!/bin/sh\necho hi\n") } });
  await assert.rejects(pullWasmModule(`oci://${registry.address}/not-wasm:1`, { cacheDir }), (e: Error) =>
    e instanceof WasmPullError && /is invalid: plugin\.wasm does not start with the Wasm magic/.test(e.message));

  await pushImage(registry.address, "plain-tar", "1", { files: { "plugin.wasm": wasm }, layerMediaType: "application/vnd.oci.image.layer.v1.tar" });
  await assert.rejects(pullWasmModule(`oci://${registry.address}/plain-tar:1`, { cacheDir }), (e: Error) =>
    e instanceof WasmPullError && /invalid media type application\/vnd\.oci\.image\.layer\.v1\.tar \(expect application\/vnd\.oci\.image\.layer\.v1\.tar\+gzip\)/.test(e.message));

  // Like istio-agent: only the LAST layer counts, and plugin.wasm may sit in a directory.
  const nested = await pushImage(registry.address, "nested", "1", { earlierLayers: [{ "junk.txt": Buffer.from("x") }], files: { "./dist/plugin.wasm": wasm }, layerMediaType: OCI_LAYER_GZIP });
  const pulled = await pullWasmModule(`oci://${registry.address}/nested:1`, { cacheDir, sha256: nested.slice(7) });
  assert.ok(pulled.bytes.equals(wasm));
  // Docker-format images (Docker manifest + rootfs.diff.tar.gzip layer) are accepted too.
  const docker = await pushImage(registry.address, "docker", "1", {
    files: { "plugin.wasm": wasm },
    manifestMediaType: "application/vnd.docker.distribution.manifest.v2+json",
    layerMediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  });
  assert.ok((await pullWasmModule(`oci://${registry.address}/docker:1`, { cacheDir, sha256: docker.slice(7) })).bytes.equals(wasm));
});

test("a field of the wrong type is refused with its path", () => {
  const base = (spec: string) => `apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: p, namespace: ns}\nspec:\n  url: oci://${imageRef}\n${spec}`;
  const cases: Array<[string, RegExp]> = [
    ["  pluginConfig: reporter\n", /spec\.pluginConfig: expected an object, got string "reporter"/],
    ["  failStrategy: 3\n", /spec\.failStrategy: expected one of FAIL_CLOSE, FAIL_OPEN, FAIL_RELOAD \(a string\), got number 3/],
    ["  phase: 7\n", /spec\.phase: expected one of UNSPECIFIED_PHASE, AUTHN, AUTHZ, STATS \(a string\), got number 7/],
    ["  match: {mode: CLIENT}\n", /spec\.match: expected a list, got object/],
    ["  sha256: 12\n", /spec\.sha256: expected a string, got number 12/],
    ["  vmConfig: {env: [{name: A, valueFrom: HOST, value: x}]}\n", /spec\.vmConfig\.env\[0\]\.value: value may only be set when valueFrom is INLINE/],
    ["  selector: {matchLabels: {app: x}}\n", /spec\.selector: valid in Istio but not supported by the local loader/],
    ["  failstrategy: FAIL_OPEN\n", /spec\.failstrategy: unknown field/],
  ];
  for (const [spec, message] of cases) {
    assert.throws(() => parseWasmPlugins(base(spec), "case.yaml"), (e: Error) => {
      assert.ok(e instanceof WasmPluginError, `${spec}: ${e}`);
      assert.match(e.message, /^case\.yaml:1: WasmPlugin ns\/p: /);
      assert.match(e.message, message);
      return true;
    });
  }
  assert.throws(() => parseWasmPlugins(base("").replace(/ {2}url: .*\n/, "  phase: STATS\n"), "case.yaml"), /spec\.url: required/);
});

test("pull failure: FAIL_OPEN keeps serving without the plugin, FAIL_CLOSE refuses with 403", async () => {
  // A fresh cache: with the digest pinned and IfNotPresent, a cached module would be used
  // without asking the registry (as istio-agent does), and nothing would fail.
  const cacheDir = join(work, "empty-cache");
  const deadPort = await freePort();
  const http = readFileSync(join(deployDir, "wasmplugin-http.yaml"), "utf8").replaceAll(registry.address, `127.0.0.1:${deadPort}`);
  const open = await loadWasmPlugin(parseWasmPlugins(http, "dead.yaml")[0], { cacheDir, timeoutMs: 3000 });
  const closed = await loadWasmPlugin(parseWasmPlugins(http.replace("failStrategy: FAIL_OPEN", "failStrategy: FAIL_CLOSE"), "dead.yaml")[0], { cacheDir, timeoutMs: 3000 });
  const tcpClosed = await loadWasmPlugin(parseWasmPlugins(readFileSync(join(deployDir, "wasmplugin-tcp.yaml"), "utf8")
    .replaceAll(registry.address, `127.0.0.1:${deadPort}`).replace("failStrategy: FAIL_OPEN", "failStrategy: FAIL_CLOSE"), "dead-tcp.yaml")[0], { cacheDir, timeoutMs: 3000 });
  assert.equal(open.substitute, "allow");
  assert.equal(closed.substitute, "deny");
  assert.equal(tcpClosed.substitute, "deny");
  assert.match(open.pullError ?? "", /unreachable \(ECONNREFUSED\)/);
  assert.equal(open.filter.typed_config["@type"], "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC");
  assert.equal(open.filter.typed_config.rules_stat_prefix, "wasm-default-allow");
  assert.equal(closed.filter.typed_config.rules_stat_prefix, "wasm-default-deny");

  const upstream = await startUpstream();
  const backend = net.createServer((s) => s.on("data", (d) => s.write(d)).on("error", () => {}));
  await new Promise<void>((ok) => backend.listen(0, "127.0.0.1", ok));
  const [openPort, closedPort, tcpPort] = [await freePort(), await freePort(), await freePort()];
  let envoy: Envoy | undefined;
  try {
    envoy = await startEnvoy({
      name: "wasmplugin-fail",
      listeners: [
        httpListener({ name: "fail_open", port: openPort, direction: "OUTBOUND", cluster: "app", filters: [open.filter] }),
        httpListener({ name: "fail_close", port: closedPort, direction: "OUTBOUND", cluster: "app", filters: [closed.filter] }),
        tcpListener({ name: "fail_close_tcp", port: tcpPort, direction: "INBOUND", cluster: "tcp", filters: [tcpClosed.filter] }),
      ],
      clusters: [serviceCluster("app", null, [{ port: upstream.port }]), serviceCluster("tcp", null, [{ port: (backend.address() as net.AddressInfo).port }])],
    });
    const served = await httpRequest(`http://127.0.0.1:${openPort}/`);
    assert.equal(served.status, 200);
    const refused = await httpRequest(`http://127.0.0.1:${closedPort}/`);
    assert.equal(refused.status, 403);
    assert.match(refused.body, /RBAC: access denied/);
    const echoed = await new Promise<string>((ok, fail) => {
      let got = "";
      const s = net.connect(tcpPort, "127.0.0.1", () => s.write("ping"));
      s.on("data", (d) => (got += d));
      s.on("close", () => ok(got));
      s.on("error", (e: NodeJS.ErrnoException) => (e.code === "ECONNRESET" ? ok(got) : fail(e)));
    });
    assert.equal(echoed, "", "deny-all network RBAC closes the connection before any byte reaches the backend");
    assert.equal(upstream.requests.length, 1, "only the FAIL_OPEN request reached the app");
    const text = await envoy.prometheus();
    assert.ok(!text.includes("istio_requests_total"), "no plugin, no istio metrics");
    const stats = await envoy.admin("/stats");
    assert.match(stats, /^http\.fail_open\.rbac\.wasm-default-allow\.denied: 0$/m);
    assert.match(stats, /^http\.fail_close\.rbac\.wasm-default-deny\.denied: 1$/m);
    assert.match(stats, /^wasm-default-deny\.rbac\.denied: 1$/m, "the network substitute refused the TCP connection");
  } finally {
    await envoy?.stop();
    await upstream.close();
    backend.close();
  }
});
