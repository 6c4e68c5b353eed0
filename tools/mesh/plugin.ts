// The plugin reaches the mesh's proxies the way Istio delivers it: `tools/image.ts` builds the
// OCI image and pushes it to a local registry (the harness's docker-registry on loopback),
// `tools/manifests.ts` renders deploy/*.yaml for that image, and the harness's WasmPlugin
// loader (istiod + istio-agent in miniature) pulls the module from the registry into a fresh
// cache and turns each WasmPlugin into the Envoy filter the proxies get.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../../tests/harness/envoy.ts";
import { pushImage, startRegistry, type Registry } from "../../tests/harness/registry.ts";
import { loadWasmPlugin, readWasmPlugins, type LoadedWasmPlugin, type WasmPlugin } from "../../tests/harness/wasmplugin.ts";
import { renderManifests } from "../manifests.ts";
import { demoExporter } from "./jaeger.ts";

// ---- TRACING HOOK -------------------------------------------------------------------------
// The plugin does not emit spans yet: assembly/trace/ parses and formats trace context but is
// not wired into the plugin, and assembly/config/ has no `tracing` field. When it has, return
// the plugin's tracing configuration here (it is merged into every WasmPlugin's pluginConfig
// before the loader translates it). Everything else is in place:
//   - every proxy has a `zipkin` cluster pointing at the demo's Zipkin collector
//     (`collector.cluster`, POST `collector.path`; tools/mesh/envoy-config.ts);
//   - the apps forward x-request-id, traceparent, tracestate, b3 and x-b3-* (apps/service.ts);
//   - the demo prints the slowest trace as a tree once spans arrive (report.ts);
//   - tests/integration/mesh.test.ts has the connected-trace assertion, skipped while this
//     returns undefined.
export interface ZipkinCollector {
  /** Envoy cluster the proxies reach Zipkin through. */
  cluster: string;
  /** Zipkin's v2 JSON span endpoint. */
  path: string;
  /** host:port, as the proxies dial it. */
  address: string;
}

export function tracingPluginConfig(collector: ZipkinCollector): Record<string, unknown> | undefined {
  // Every request is traced in the demo, so the slowest trace is always there to show.
  return { random_sampling_percentage: 100, ...demoExporter(collector.cluster, collector.path), flush_interval: "500ms" };
}
// -------------------------------------------------------------------------------------------

export interface PluginDelivery {
  registry: Registry;
  imageRef: string;
  digest: string;
  /** Rendered manifests (build/demo/deploy or the test's directory). */
  deployDir: string;
  /** Where the loader cached the pulled module (mounted read-only into the containers). */
  cacheDir: string;
  plugins: LoadedWasmPlugin[];
  tracing: boolean;
}

function runImageTool(registry: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "tools/image.ts")], {
      cwd: ROOT,
      env: { ...process.env, REGISTRY: registry },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (c) => (output += c));
    child.stderr.on("data", (c) => (output += c));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 0) return resolve(output);
      const last = output.trim().split("\n").filter((l) => l.trim()).slice(-3).join(" / ");
      reject(new Error(`exit ${code}: ${last}`));
    });
  });
}

/**
 * Registry up, image built and pushed, manifests rendered into `outDir/deploy`, modules pulled
 * into `outDir/wasm-cache`. build/image.ref and build/image.digest (which tools/image.ts
 * rewrites with this run's registry) are put back as they were.
 */
/** `mtls`: the mesh runs mutual TLS between its sidecars (the loopback fallback runs plaintext). */
export async function deliverPlugin(outDir: string, collector: ZipkinCollector, step: (t: string) => void, mtls: boolean): Promise<PluginDelivery> {
  const build = join(ROOT, "build");
  if (!existsSync(join(build, "plugin.wasm"))) throw new Error("build/plugin.wasm missing: run `make build` first");
  const saved: Record<string, Buffer | undefined> = {};
  for (const f of ["image.ref", "image.digest"]) saved[f] = existsSync(join(build, f)) ? readFileSync(join(build, f)) : undefined;

  const registry = await startRegistry();
  try {
    step(`registry on ${registry.address}; building the plugin image with tools/image.ts and pushing it`);
    let imageRef: string;
    let digest: string;
    try {
      await runImageTool(registry.address);
      imageRef = readFileSync(join(build, "image.ref"), "utf8").trim();
      digest = readFileSync(join(build, "image.digest"), "utf8").trim();
    } catch (err) {
      // Without a working buildah (e.g. not root), push the same single-layer compat image with
      // the harness's distribution-API pusher, so the loader still pulls it from a registry.
      step(`tools/image.ts failed (${(err as Error).message.slice(0, 300)}); pushing plugin.wasm with the harness's pure-Node pusher instead`);
      const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;
      imageRef = `${registry.address}/mesh-telemetry-wasm:${version}`;
      digest = await pushImage(registry.address, "mesh-telemetry-wasm", version, { files: { "plugin.wasm": readFileSync(join(build, "plugin.wasm")) } });
    }

    const deployDir = join(outDir, "deploy");
    renderManifests({ ref: imageRef, digest }, deployDir);
    step(`pushed ${imageRef}@${digest.slice(0, 19)}…; manifests rendered into ${deployDir.replace(`${ROOT}/`, "")}`);

    const cacheDir = join(outDir, "wasm-cache");
    rmSync(cacheDir, { recursive: true, force: true }); // a fresh cache: really pull, as a new pod would
    mkdirSync(cacheDir, { recursive: true });
    const tracing = tracingPluginConfig(collector);
    const manifests: WasmPlugin[] = [
      ...readWasmPlugins(join(deployDir, "wasmplugin-http.yaml")),
      ...readWasmPlugins(join(deployDir, "wasmplugin-tcp.yaml")),
    ];
    const plugins: LoadedWasmPlugin[] = [];
    for (const m of manifests) {
      if (tracing) m.spec.pluginConfig = { ...(m.spec.pluginConfig ?? {}), tracing };
      // Inbound, believe a caller's x-envoy-peer-metadata only over mutual TLS: a plaintext
      // caller (PERMISSIVE chains accept one) cannot claim a workload identity. A plaintext mesh
      // keeps Istio's default (believe it), or no caller would be known.
      if (mtls && m.spec.type !== "NETWORK" && m.spec.match?.some((x) => x.mode === "SERVER")) {
        m.spec.pluginConfig = { ...(m.spec.pluginConfig ?? {}), peer_metadata_trust: "mtls_only" };
      }
      const loaded = await loadWasmPlugin(m, { cacheDir });
      if (loaded.pullError) throw new Error(`WasmPlugin ${loaded.resourceName}: ${loaded.pullError}`);
      plugins.push(loaded);
    }
    step(`loader pulled ${plugins.length} WasmPlugins (${plugins.map((p) => `${p.resourceName} ${p.directions.join("+")}`).join(", ")})`);
    return { registry, imageRef, digest, deployDir, cacheDir, plugins, tracing: tracing !== undefined };
  } catch (err) {
    await registry.stop();
    throw err;
  } finally {
    for (const [f, content] of Object.entries(saved)) {
      if (content) writeFileSync(join(build, f), content);
      else rmSync(join(build, f), { force: true });
    }
  }
}
