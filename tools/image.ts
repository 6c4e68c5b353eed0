// `make image`: packages build/plugin.wasm as an OCI image for Istio's WasmPlugin (`oci://` URL),
// the "compat" variant: one gzip tar layer holding /plugin.wasm (see Dockerfile).
//
// The build is reproducible: the same plugin.wasm (and the same package.json version, Dockerfile
// and buildah/skopeo versions) always gives the same manifest digest. Every run proves it by
// building twice, in two throwaway buildah stores from two differently-stamped copies of the
// module, and comparing the digests.
//
// Outputs:
//   build/oci/          OCI image layout (tag = package version); loaders can read it without a registry
//   build/image.digest  `sha256:<hex>` of the manifest exactly as a registry stores it (its
//                       Docker-Content-Digest); WasmPlugin `sha256:` takes the hex part
//   build/image.ref     `[REGISTRY/]mesh-telemetry-wasm:<version>`
//
// Environment: REGISTRY=host:port pushes the layout there (TLS verification off, for local
// registries) and checks the digest the registry reports. SOURCE_DATE_EPOCH sets the image's
// `created` time (default 0). IMAGE_SOURCE sets org.opencontainers.image.source (default:
// package.json `repository`, else the git remote `origin`).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BUILD = join(ROOT, "build");
const WASM = join(BUILD, "plugin.wasm");
const LAYOUT = join(BUILD, "oci");

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"; // what Istio's compat loader requires

const started = Date.now();
const step = (text: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);

class ImageError extends Error {}
const fail = (text: string): never => {
  throw new ImageError(text);
};

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

// Runs a tool to completion; on failure shows its output, which is otherwise kept quiet.
// Returns its stdout as bytes (a manifest must be hashed exactly as received).
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Buffer {
  const r = spawnSync(cmd, args, { cwd: ROOT, env, maxBuffer: 64 << 20 });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-30).join("\n");
    fail(`${cmd} ${args.join(" ")}\nexited with ${r.status ?? r.signal}:\n${out}`);
  }
  return r.stdout;
}

function which(tool: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).status === 0;
}

function requireTool(tool: string, why: string): string {
  if (!which(tool)) {
    fail(
      `${tool} is not on PATH (${why}).\n` +
      `  \`make image\` installs it (apt-get install -y buildah skopeo); by hand, as root:\n` +
      `  apt-get update && apt-get install -y buildah skopeo`,
    );
  }
  return run(tool, ["--version"]).toString("utf8").trim();
}

function imageSource(pkg: { repository?: string | { url?: string } }): string {
  if (process.env.IMAGE_SOURCE !== undefined) return process.env.IMAGE_SOURCE;
  const repo = typeof pkg.repository === "string" ? pkg.repository : pkg.repository?.url;
  const raw = repo ?? spawnSync("git", ["remote", "get-url", "origin"], { cwd: ROOT, encoding: "utf8" }).stdout?.trim() ?? "";
  // git@host:owner/name.git and git+https://host/owner/name.git -> https://host/owner/name
  return raw
    .replace(/^git\+/, "")
    .replace(/^git@([^:]+):/, "https://$1/")
    .replace(/^ssh:\/\/git@/, "https://")
    .replace(/\.git$/, "");
}

interface Descriptor { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }
interface Manifest { schemaVersion: number; mediaType?: string; config: Descriptor; layers: Descriptor[]; annotations?: Record<string, string> }

// Reads a blob from an OCI layout and checks it against its descriptor.
function readBlob(layout: string, d: Descriptor): Buffer {
  const [algo, hex] = d.digest.split(":");
  if (algo !== "sha256") fail(`unexpected digest algorithm in ${d.digest}`);
  const data = readFileSync(join(layout, "blobs", "sha256", hex));
  if (sha256(data) !== hex) fail(`blob ${d.digest} in ${layout} does not hash to its digest`);
  if (data.length !== d.size) fail(`blob ${d.digest}: size ${data.length}, descriptor says ${d.size}`);
  return data;
}

function layoutManifest(layout: string, tag: string): { digest: string; manifest: Manifest; bytes: Buffer } {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: Descriptor[] };
  const entries = index.manifests.filter((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (entries.length !== 1) fail(`${layout}/index.json: expected one manifest tagged ${tag}, found ${entries.length}`);
  const desc = entries[0];
  if (desc.mediaType !== OCI_MANIFEST) fail(`${layout}: top-level entry is ${desc.mediaType}, want a plain image manifest (${OCI_MANIFEST})`);
  const bytes = readBlob(layout, desc);
  return { digest: desc.digest, manifest: JSON.parse(bytes.toString("utf8")) as Manifest, bytes };
}

// Minimal tar reader (ustar + pax path records): enough to list a one-file layer.
interface TarEntry { name: string; type: string; mode: number; uid: number; gid: number; mtime: number; data: Buffer }
function readTar(tar: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  const str = (b: Buffer) => b.toString("utf8").replace(/\0.*$/s, "");
  const num = (b: Buffer) => parseInt(str(b).trim() || "0", 8);
  let paxPath: string | undefined;
  for (let off = 0; off + 512 <= tar.length;) {
    const h = tar.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    const size = num(h.subarray(124, 136));
    const type = String.fromCharCode(h[156] || 0x30);
    const prefix = str(h.subarray(345, 500));
    const data = tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === "x") {
      paxPath = /\d+ path=([^\n]*)\n/.exec(data.toString("utf8"))?.[1];
      continue;
    }
    if (type === "g") continue;
    const name = paxPath ?? (prefix ? `${prefix}/${str(h.subarray(0, 100))}` : str(h.subarray(0, 100)));
    paxPath = undefined;
    entries.push({
      name, type, data,
      mode: num(h.subarray(100, 108)), uid: num(h.subarray(108, 116)), gid: num(h.subarray(116, 124)),
      mtime: num(h.subarray(136, 148)),
    });
  }
  return entries;
}

// Checks that the layout holds what Istio's compat loader accepts, carrying exactly `wasm`.
function verifyLayout(layout: string, tag: string, wasm: Buffer, version: string): { digest: string; manifest: Manifest } {
  const { digest, manifest } = layoutManifest(layout, tag);
  if (manifest.mediaType !== OCI_MANIFEST) fail(`manifest mediaType is ${manifest.mediaType}, want ${OCI_MANIFEST}`);
  if (manifest.config.mediaType !== OCI_CONFIG) fail(`config mediaType is ${manifest.config.mediaType}, want ${OCI_CONFIG}`);
  if (manifest.layers.length !== 1) fail(`image has ${manifest.layers.length} layers; the compat variant wants exactly one`);
  const layer = manifest.layers[manifest.layers.length - 1];
  if (layer.mediaType !== OCI_LAYER_GZIP) fail(`layer mediaType is ${layer.mediaType}; Istio's compat loader requires ${OCI_LAYER_GZIP}`);
  const tar = gunzipSync(readBlob(layout, layer));
  const config = JSON.parse(readBlob(layout, manifest.config).toString("utf8"));
  if (config.rootfs?.diff_ids?.[0] !== `sha256:${sha256(tar)}`) fail("config rootfs.diff_ids does not match the layer's uncompressed tar");
  if (config.config?.Labels?.["org.opencontainers.image.version"] !== version) fail("image label org.opencontainers.image.version is not the package version");
  const entries = readTar(tar);
  const files = entries.filter((e) => e.type === "0");
  const top = files.filter((e) => posix.normalize(e.name).replace(/^\/+/, "") === "plugin.wasm");
  if (files.length !== 1 || top.length !== 1) {
    fail(`layer must hold exactly one file, plugin.wasm at the top level; it holds: ${entries.map((e) => `${e.type} ${e.name}`).join(", ")}`);
  }
  if (!top[0].data.equals(wasm)) fail("plugin.wasm in the layer differs from the module that was packaged");
  return { digest, manifest };
}

interface Built { digest: string; seconds: number }

// One full build in a throwaway buildah store: bud, then push into an OCI layout (that push
// gzips the layer; the layout's manifest is the one a registry will store, byte for byte).
function buildOnce(opts: {
  work: string; wasm: string; mtime: Date; layout: string; tag: string; version: string; source: string; epoch: number;
}): Built {
  const t0 = Date.now();
  const ctx = join(opts.work, "context");
  mkdirSync(ctx, { recursive: true });
  const staged = join(ctx, "plugin.wasm");
  copyFileSync(opts.wasm, staged);
  utimesSync(staged, opts.mtime, opts.mtime); // must not matter: --timestamp rewrites file times
  const env = { ...process.env, TMPDIR: opts.work }; // buildah's scratch files stay in the work dir
  // Private store (vfs: no kernel overlay needed) so nothing leaks into /var/lib/containers.
  const store = ["--root", join(opts.work, "root"), "--runroot", join(opts.work, "runroot"), "--storage-driver", "vfs"];
  const local = `localhost/mesh-telemetry-wasm:${opts.tag}`;
  run("buildah", [
    ...store, "bud", "--quiet",
    "--isolation", "chroot",
    "--format", "oci",
    "--platform", "linux/amd64", // pinned so the config (part of the digest) does not follow the build host
    "--timestamp", String(opts.epoch), // fixes `created` and every file time in the layer
    "--omit-history", // history entries embed the buildah version and the instructions
    "--identity-label=false", // else io.buildah.version=<buildah version> is added as a label
    "--layers=false",
    "--annotation", "module.wasm.image/variant=compat", // manifest annotation asked for by the compat spec
    "--build-arg", `VERSION=${opts.version}`,
    "--build-arg", `SOURCE=${opts.source}`,
    "--file", join(ROOT, "Dockerfile"),
    "--tag", local,
    ctx,
  ], env);
  rmSync(opts.layout, { recursive: true, force: true });
  run("buildah", [
    ...store, "push", "--quiet",
    "--format", "oci",
    "--compression-format", "gzip", // explicit: a containers.conf default of zstd would break Istio
    local, `oci:${opts.layout}:${opts.tag}`,
  ], env);
  const { digest } = layoutManifest(opts.layout, opts.tag);
  return { digest, seconds: (Date.now() - t0) / 1000 };
}

async function registryDigest(registry: string, repo: string, tag: string): Promise<string | undefined> {
  // The header a registry reports for the tag; plain HTTP only (a loopback or in-cluster registry).
  try {
    const res = await fetch(`http://${registry}/v2/${repo}/manifests/${tag}`, {
      method: "HEAD",
      headers: { Accept: OCI_MANIFEST },
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) return undefined;
    return res.headers.get("docker-content-digest") ?? undefined;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const name = "mesh-telemetry-wasm";
  const version: string = pkg.version;
  const registry = process.env.REGISTRY?.replace(/\/+$/, "") || undefined;
  const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? 0);
  if (!Number.isInteger(epoch) || epoch < 0) fail(`SOURCE_DATE_EPOCH must be a non-negative integer, got ${process.env.SOURCE_DATE_EPOCH}`);

  step("checking tools");
  const buildah = requireTool("buildah", "it builds the image");
  const skopeo = registry ? requireTool("skopeo", "it pushes the image when REGISTRY is set") : undefined;
  console.log(`        ${buildah}${skopeo ? `; ${skopeo}` : ""}`);
  if (!existsSync(WASM)) fail(`${WASM} is missing: run \`make build\` first`);

  const work = mkdtempSync(join(tmpdir(), "mesh-telemetry-image-"));
  try {
    // A private copy, so a concurrent `make build` cannot change the module mid-way.
    const wasmCopy = join(work, "plugin.wasm");
    copyFileSync(WASM, wasmCopy);
    const wasm = readFileSync(wasmCopy);
    const source = imageSource(pkg);
    step(`packaging build/plugin.wasm (${wasm.length} bytes, sha256 ${sha256(wasm).slice(0, 16)}…) as ${name}:${version}`);
    if (!source) console.log("        note: no IMAGE_SOURCE, package.json repository or git origin: org.opencontainers.image.source is empty");

    const common = { wasm: wasmCopy, tag: version, version, source, epoch };
    step("build 1: buildah bud into a fresh store, push to the OCI layout build/oci/");
    const first = buildOnce({ ...common, work: join(work, "a"), layout: LAYOUT, mtime: new Date() });
    step(`build 1: manifest ${first.digest} (${first.seconds.toFixed(2)} s)`);

    step("build 2: the same from a second store and a copy with another mtime, to prove reproducibility");
    const second = buildOnce({ ...common, work: join(work, "b"), layout: join(work, "b", "oci"), mtime: new Date(86_400_000) });
    step(`build 2: manifest ${second.digest} (${second.seconds.toFixed(2)} s)`);
    if (second.digest !== first.digest) {
      fail(`NOT reproducible: two builds of the same plugin.wasm gave ${first.digest} and ${second.digest}`);
    }

    step("checking build/oci: plain OCI manifest, one tar+gzip layer holding exactly plugin.wasm");
    const { digest, manifest } = verifyLayout(LAYOUT, version, wasm, version);
    const layer = manifest.layers[0];
    console.log(`        manifest ${manifest.mediaType}, layer ${layer.mediaType} (${layer.size} bytes)`);

    const ref = `${registry ? `${registry}/` : ""}${name}:${version}`;
    writeFileSync(join(BUILD, "image.digest"), `${digest}\n`);
    writeFileSync(join(BUILD, "image.ref"), `${ref}\n`);
    step(`wrote build/image.digest (${digest}) and build/image.ref (${ref})`);

    if (registry) {
      const dest = `docker://${registry}/${name}:${version}`;
      step(`pushing build/oci to ${dest} (skopeo copy --preserve-digests)`);
      const digestFile = join(work, "pushed.digest");
      run("skopeo", [
        "copy", "--quiet",
        "--preserve-digests", // refuse any manifest rewrite: the registry must store our bytes
        "--dest-tls-verify=false",
        "--digestfile", digestFile,
        `oci:${LAYOUT}:${version}`, dest,
      ]);
      const pushed = readFileSync(digestFile, "utf8").trim();
      const raw = run("skopeo", ["inspect", "--raw", "--tls-verify=false", dest]);
      const served = `sha256:${sha256(raw)}`;
      const header = await registryDigest(registry, name, version);
      for (const [what, value] of [["skopeo's pushed digest", pushed], ["digest of the manifest the registry serves", served], ["registry Docker-Content-Digest", header]] as const) {
        if (value !== undefined && value !== digest) {
          fail(`DIGEST MISMATCH after push: ${what} is ${value}, build/image.digest is ${digest}`);
        }
      }
      step(`registry holds ${ref}@${digest}` +
        (header ? " (Docker-Content-Digest agrees)" : " (Docker-Content-Digest not readable over plain HTTP; served bytes agree)"));
    }

    console.log(`\nWasmPlugin:\n  url: oci://${registry ? `${registry}/` : "<registry>/"}${name}:${version}\n  sha256: ${digest.slice("sha256:".length)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (e) {
  if (!(e instanceof ImageError)) throw e;
  console.error(`\nimage: ${e.message}`);
  process.exitCode = 1;
}
