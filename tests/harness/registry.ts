// A throwaway OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on
// 127.0.0.1 with a free port and temporary storage, plus a minimal pusher that speaks the
// distribution API directly, so tests can build odd images (no plugin.wasm, several layers,
// uncompressed layers) without buildah.
//
//   const registry = await startRegistry();   // { address: "127.0.0.1:PORT", stop() }
//   await pushImage(registry.address, "repo", "tag", { files: { "plugin.wasm": bytes } });
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { freePort, sleep } from "./envoy.ts";

export const REGISTRY_BIN = process.env.DOCKER_REGISTRY_BIN ?? "/usr/bin/docker-registry";

export interface Registry {
  /** host:port, e.g. "127.0.0.1:38211" (plain HTTP). */
  address: string;
  /** The registry's log (stdout and stderr). */
  logs(): string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** Starts docker-registry on 127.0.0.1:<free port> with storage in a temp dir; resolves once /v2/ answers. */
export async function startRegistry(): Promise<Registry> {
  if (!existsSync(REGISTRY_BIN)) {
    throw new Error(`${REGISTRY_BIN} not found: apt-get install -y docker-registry (Debian's CNCF distribution registry)`);
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "registry-"));
  const config = join(dir, "config.yml");
  // No auth, no TLS, loopback only; the storage goes away with stop().
  writeFileSync(config, [
    "version: 0.1",
    "log:",
    "  level: warn",
    "  accesslog: {disabled: true}",
    "storage:",
    `  filesystem: {rootdirectory: ${JSON.stringify(join(dir, "data"))}}`,
    "  delete: {enabled: true}",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    "  secret: mesh-telemetry-test-registry",
    "",
  ].join("\n"));
  let output = "";
  const child = spawn(REGISTRY_BIN, ["serve", config], { stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((ok) => child.on("exit", (code) => {
    exitCode = code;
    live.delete(child);
    ok();
  }));
  child.stdout?.on("data", (c) => (output += c));
  child.stderr?.on("data", (c) => (output += c));
  const address = `127.0.0.1:${port}`;
  const registry: Registry = {
    address,
    logs: () => output,
    stop: async () => {
      if (exitCode === undefined) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      await registry.stop();
      throw new Error(`docker-registry exited with ${exitCode}:\n${output.slice(-3000)}`);
    }
    try {
      const res = await request("GET", `http://${address}/v2/`);
      if (res.status === 200) return registry;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  await registry.stop();
  throw new Error(`docker-registry did not answer on ${address} within 15 s:\n${output.slice(-3000)}`);
}

interface RawResponse { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

function request(method: string, url: string, headers: Record<string, string> = {}, body?: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.setTimeout(10000, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.on("error", reject);
    if (body) req.end(body);
    else req.end();
  });
}

const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

/** A ustar archive of regular files (mode 0444, mtime 0), as a layer of an image. */
export function makeTar(files: Record<string, Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, data] of Object.entries(files)) {
    if (Buffer.byteLength(name) > 100) throw new Error(`makeTar: name too long: ${name}`);
    const h = Buffer.alloc(512);
    h.write(name, 0, "utf8");
    h.write("0000444\0", 100);
    h.write("0000000\0", 108);
    h.write("0000000\0", 116);
    h.write(data.length.toString(8).padStart(11, "0") + "\0", 124);
    h.write("00000000000\0", 136);
    h.fill(" ", 148, 156);
    h.write("0", 156);
    h.write("ustar\0", 257);
    h.write("00", 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    parts.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export interface PushOptions {
  /** Files of the (single, or last) layer. */
  files?: Record<string, Buffer>;
  /** Extra layers before it, each a set of files. */
  earlierLayers?: Array<Record<string, Buffer>>;
  /** Layer media type; default OCI tar+gzip (gzip is applied only for +gzip types). */
  layerMediaType?: string;
  /** Manifest media type; default OCI image manifest. */
  manifestMediaType?: string;
}

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";

async function pushBlob(address: string, repo: string, data: Buffer): Promise<string> {
  const digest = `sha256:${sha256(data)}`;
  const head = await request("HEAD", `http://${address}/v2/${repo}/blobs/${digest}`);
  if (head.status === 200) return digest;
  const start = await request("POST", `http://${address}/v2/${repo}/blobs/uploads/`, { "content-length": "0" });
  if (start.status !== 202 || !start.headers.location) throw new Error(`push ${repo}: start upload: HTTP ${start.status} ${start.body}`);
  const location = new URL(start.headers.location, `http://${address}`);
  location.searchParams.set("digest", digest);
  const put = await request("PUT", location.toString(), {
    "content-type": "application/octet-stream",
    "content-length": String(data.length),
  }, data);
  if (put.status !== 201) throw new Error(`push ${repo}: blob ${digest}: HTTP ${put.status} ${put.body}`);
  return digest;
}

/**
 * Builds an image from files and pushes it with the distribution API. Returns the manifest
 * digest (`sha256:<hex>`), which is what WasmPlugin `sha256` (hex part) must hold.
 */
export async function pushImage(address: string, repo: string, tag: string, opts: PushOptions = {}): Promise<string> {
  const layerType = opts.layerMediaType ?? OCI_LAYER_GZIP;
  const layers = [...(opts.earlierLayers ?? []), opts.files ?? {}].map((files) => {
    const tar = makeTar(files);
    const blob = layerType.endsWith("gzip") ? gzipSync(tar) : tar;
    return { tar, blob };
  });
  const config = Buffer.from(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: layers.map((l) => `sha256:${sha256(l.tar)}`) },
  }));
  const configDigest = await pushBlob(address, repo, config);
  const layerDescs = [];
  for (const l of layers) {
    layerDescs.push({ mediaType: layerType, digest: await pushBlob(address, repo, l.blob), size: l.blob.length });
  }
  const manifestType = opts.manifestMediaType ?? OCI_MANIFEST;
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: manifestType,
    config: {
      mediaType: manifestType === OCI_MANIFEST ? "application/vnd.oci.image.config.v1+json" : "application/vnd.docker.container.image.v1+json",
      digest: configDigest,
      size: config.length,
    },
    layers: layerDescs,
  }));
  const put = await request("PUT", `http://${address}/v2/${repo}/manifests/${tag}`, {
    "content-type": manifestType,
    "content-length": String(manifest.length),
  }, manifest);
  if (put.status !== 201) throw new Error(`push ${repo}:${tag}: manifest: HTTP ${put.status} ${put.body}`);
  const digest = `sha256:${sha256(manifest)}`;
  const reported = put.headers["docker-content-digest"];
  if (reported && reported !== digest) throw new Error(`push ${repo}:${tag}: registry reports ${reported}, manifest hashes to ${digest}`);
  return digest;
}
