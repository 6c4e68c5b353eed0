// Validates the Istio manifests offline against Istio's published CRDs, as the Kubernetes API
// server would on `kubectl apply` (schema, enums, patterns, unknown fields, list-map keys, the
// CRDs' CEL rules), with no cluster. Exits non-zero if any document is invalid.
//
//   node --import tsx tools/validate-manifests.ts [FILE|DIR ...]
//
// Without arguments it renders deploy/*.yaml afresh into a temp dir (with build/image.* when
// they name a registry, else a stand-in reference) and validates those, plus build/deploy/*.yaml
// when `make manifests` has written them.
//
// The checker is tools/validate-manifests/ (Go): it runs Kubernetes' own CRD validation code
// (k8s.io/apiextensions-apiserver, as Istio's pkg/config/crd does) over the CRDs that the Go
// module istio.io/api ships in kubernetes/customresourcedefinitions.gen.yaml, and decodes
// IstioOperator meshConfig strictly into istio.io/api's MeshConfig. Versions are pinned by its
// go.mod/go.sum and fetched through the Go module proxy; the binary is cached in build/tools/
// under a hash of its sources. Needs Go >= 1.26: `go` on PATH, $GO, or /usr/local/go/bin/go.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { ManifestError, readImageInfo, renderManifests, ROOT, type ImageInfo } from "./manifests.ts";

const SRC = join(ROOT, "tools", "validate-manifests");
const BIN_DIR = join(ROOT, "build", "tools");

class ValidateError extends Error {}

function goEnv(): NodeJS.ProcessEnv {
  // The module's go.sum pins every version; never let a build rewrite it.
  return { ...process.env, GOFLAGS: `${process.env.GOFLAGS ?? ""} -mod=readonly`.trim() };
}

// `go` from PATH, else Go's default install location (where polyglot machines have it).
const GO = process.env.GO
  ?? (spawnSync("sh", ["-c", "command -v go"]).status !== 0 && existsSync("/usr/local/go/bin/go") ? "/usr/local/go/bin/go" : "go");

function go(args: string[], what: string): string {
  const r = spawnSync(GO, args, { cwd: SRC, env: goEnv(), encoding: "utf8", maxBuffer: 16 << 20 });
  if (r.error) {
    throw new ValidateError(
      `could not run ${GO} (${r.error.message}): the manifest validator is a Go program and needs Go >= 1.26.\n` +
      `  Put go on PATH (or set GO=/path/to/go), then re-run.`,
    );
  }
  if (r.status !== 0) throw new ValidateError(`${what}: go ${args.join(" ")} failed:\n${(r.stderr || r.stdout).trim().slice(-4000)}`);
  return r.stdout;
}

/** Builds (once per source hash) and returns the validator binary. */
export function ensureValidator(): string {
  const version = go(["version"], "checking Go").trim();
  const hash = createHash("sha256");
  for (const f of ["main.go", "go.mod", "go.sum"]) hash.update(readFileSync(join(SRC, f)));
  hash.update(version);
  const bin = join(BIN_DIR, `validate-manifests-${hash.digest("hex").slice(0, 16)}`);
  if (existsSync(bin)) return bin;
  mkdirSync(BIN_DIR, { recursive: true });
  for (const f of readdirSync(BIN_DIR)) if (f.startsWith("validate-manifests-")) rmSync(join(BIN_DIR, f), { force: true });
  const t0 = Date.now();
  console.log(`== building the manifest validator with ${version} (first build fetches k8s.io/apiextensions-apiserver ` +
    `and istio.io/api through the Go module proxy; a few minutes, then cached)`);
  const tmp = `${bin}.tmp-${process.pid}`;
  go(["build", "-trimpath", "-o", tmp, "."], "building the validator");
  renameSync(tmp, bin);
  console.log(`   built ${relative(ROOT, bin)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return bin;
}

/** Istio's published CRDs, from the pinned istio.io/api module (downloaded if needed). */
export function istioCrdFile(): string {
  const info = JSON.parse(go(["mod", "download", "-json", "istio.io/api"], "fetching istio.io/api")) as { Dir?: string; Version?: string; Error?: string };
  if (!info.Dir) throw new ValidateError(`go mod download istio.io/api: ${info.Error ?? "no directory"}`);
  const file = join(info.Dir, "kubernetes", "customresourcedefinitions.gen.yaml");
  if (!existsSync(file)) throw new ValidateError(`istio.io/api ${info.Version} has no kubernetes/customresourcedefinitions.gen.yaml`);
  return file;
}

function yamlFiles(path: string): string[] {
  if (!existsSync(path)) throw new ValidateError(`${path}: no such file or directory`);
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).filter((f) => f.endsWith(".yaml") || f.endsWith(".yml")).sort().map((f) => join(path, f));
}

function defaultFiles(tmp: string): string[] {
  const out = join(tmp, "deploy");
  let image: ImageInfo;
  let files: string[];
  try {
    image = readImageInfo();
    files = renderManifests(image, out);
  } catch (e) {
    if (!(e instanceof ManifestError)) throw e;
    // No image built, or built without a registry: the templates are checked all the same.
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    const digestFile = join(ROOT, "build", "image.digest");
    const digest = existsSync(digestFile)
      ? readFileSync(digestFile, "utf8").trim()
      : `sha256:${createHash("sha256").update("mesh-telemetry-wasm").digest("hex")}`;
    image = { ref: `registry.example.com/mesh-telemetry-wasm:${pkg.version}`, digest };
    files = renderManifests(image, out);
  }
  console.log(`== rendered deploy/*.yaml with oci://${image.ref} for checking`);
  const built = join(ROOT, "build", "deploy");
  if (existsSync(built)) files.push(...yamlFiles(built));
  return files;
}

function main(): number {
  const args = process.argv.slice(2);
  const tmp = mkdtempSync(join(tmpdir(), "validate-manifests-"));
  try {
    const files = args.length > 0 ? args.flatMap(yamlFiles) : defaultFiles(tmp);
    if (files.length === 0) throw new ValidateError("no YAML files to validate");
    const bin = ensureValidator();
    const crds = istioCrdFile();
    const r = spawnSync(bin, ["-crds", crds, ...files], { encoding: "utf8" });
    const shown = (s: string) => s.split(tmp + "/").join("<rendered>/").split(ROOT).join("");
    process.stdout.write(shown(r.stdout ?? ""));
    process.stderr.write(shown(r.stderr ?? ""));
    if (r.error) throw new ValidateError(`running ${bin}: ${r.error.message}`);
    return r.status ?? 1;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.exitCode = main();
  } catch (e) {
    if (!(e instanceof ValidateError)) throw e;
    console.error(`validate-manifests: ${e.message}`);
    process.exitCode = 2;
  }
}
