// `make manifests`: renders the Istio manifests in deploy/*.yaml into build/deploy/*.yaml with
// the image this build produced:
//   {{IMAGE_REF}}     registry/repository:tag (no scheme), from build/image.ref
//   {{IMAGE_SHA256}}  hex of the image MANIFEST digest, from build/image.digest (what
//                     istio-agent compares for oci:// URLs; not the sha256 of plugin.wasm)
//
// Environment: IMAGE=<registry/repo:tag> renders another reference (e.g. where CI pushed the
// image); REGISTRY=host:port is put in front of a build/image.ref that has no registry (as
// `make image` writes it when it did not push). A reference without a registry is refused:
// Istio would resolve `oci://mesh-telemetry-wasm:0.1.0` to Docker Hub's library namespace.
//
// Flags: --out DIR (default build/deploy), --image REF, --digest sha256:HEX.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const TEMPLATES_DIR = join(ROOT, "deploy");
export const DEFAULT_OUT_DIR = join(ROOT, "build", "deploy");

export class ManifestError extends Error {}

export interface ImageInfo {
  /** registry[:port]/repository[:tag|@sha256:hex], without scheme. */
  ref: string;
  /** Manifest digest, `sha256:<64 hex>`. */
  digest: string;
}

const DIGEST_RE = /^sha256:([a-f0-9]{64})$/;

/** True when the first path component of a reference names a registry host (docker's rule). */
export function hasRegistry(ref: string): boolean {
  const slash = ref.indexOf("/");
  if (slash < 0) return false;
  const first = ref.slice(0, slash);
  return first.includes(".") || first.includes(":") || first === "localhost";
}

/** The image to render: build/image.ref and build/image.digest, with IMAGE / REGISTRY applied. */
export function readImageInfo(env: NodeJS.ProcessEnv = process.env, buildDir = join(ROOT, "build")): ImageInfo {
  const digestFile = join(buildDir, "image.digest");
  const refFile = join(buildDir, "image.ref");
  if (!existsSync(digestFile) || !existsSync(refFile)) {
    throw new ManifestError(`${digestFile} / ${refFile} missing: run \`make image\` first (REGISTRY=host:port make image also pushes)`);
  }
  const digest = readFileSync(digestFile, "utf8").trim();
  let ref = env.IMAGE?.trim() || readFileSync(refFile, "utf8").trim();
  const registry = env.REGISTRY?.trim().replace(/\/+$/, "");
  if (!env.IMAGE?.trim() && registry && !hasRegistry(ref)) ref = `${registry}/${ref}`;
  return { ref, digest };
}

function checkImage(image: ImageInfo): { ref: string; hex: string } {
  const m = DIGEST_RE.exec(image.digest);
  if (!m) throw new ManifestError(`image digest must be sha256:<64 lowercase hex>, got ${JSON.stringify(image.digest)}`);
  const ref = image.ref.replace(/^oci:\/\//, "");
  if (!ref || /\s|\{\{/.test(ref)) throw new ManifestError(`image reference is empty or malformed: ${JSON.stringify(image.ref)}`);
  if (!hasRegistry(ref)) {
    throw new ManifestError(
      `image reference ${ref} names no registry, so Istio would pull it from Docker Hub (docker.io/library/...).\n` +
      `  Push and render with a registry: REGISTRY=host:port make image manifests\n` +
      `  or render another reference: IMAGE=registry.example.com/team/mesh-telemetry-wasm:0.1.0 make manifests`,
    );
  }
  const at = ref.indexOf("@sha256:");
  if (at >= 0 && ref.slice(at + 1) !== image.digest) {
    throw new ManifestError(`image reference ${ref} pins another digest than ${image.digest}`);
  }
  return { ref, hex: m[1] };
}

/** Fills the placeholders of one template; any placeholder left unknown is an error. */
export function renderText(text: string, image: ImageInfo, file = "<template>"): string {
  const { ref, hex } = checkImage(image);
  const vars: Record<string, string> = { IMAGE_REF: ref, IMAGE_SHA256: hex };
  return text.replace(/\{\{(\w+)\}\}/g, (_m, name: string) => {
    if (!(name in vars)) throw new ManifestError(`${file}: unknown placeholder {{${name}}} (known: ${Object.keys(vars).join(", ")})`);
    return vars[name];
  });
}

export function templateFiles(dir = TEMPLATES_DIR): string[] {
  return readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort().map((f) => join(dir, f));
}

/** Renders every deploy/*.yaml into outDir (replacing its YAML files); returns the written paths. */
export function renderManifests(image: ImageInfo, outDir = DEFAULT_OUT_DIR, templatesDir = TEMPLATES_DIR): string[] {
  const templates = templateFiles(templatesDir);
  if (templates.length === 0) throw new ManifestError(`no *.yaml templates in ${templatesDir}`);
  const rendered = templates.map((t) => ({ name: basename(t), text: renderText(readFileSync(t, "utf8"), image, t) }));
  mkdirSync(outDir, { recursive: true });
  for (const f of readdirSync(outDir)) if (f.endsWith(".yaml")) rmSync(join(outDir, f));
  return rendered.map(({ name, text }) => {
    const out = join(outDir, name);
    writeFileSync(out, `# Rendered by tools/manifests.ts from deploy/${name}; edit the template, not this file.\n${text}`);
    return out;
  });
}

function main(): void {
  const args = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    if (i + 1 >= args.length) throw new ManifestError(`${name} needs a value`);
    return args[i + 1];
  };
  const out = opt("--out") ?? DEFAULT_OUT_DIR;
  const imageFlag = opt("--image");
  const digestFlag = opt("--digest");
  const image = imageFlag && digestFlag
    ? { ref: imageFlag, digest: digestFlag }
    : (() => {
      const info = readImageInfo(imageFlag ? { ...process.env, IMAGE: imageFlag } : process.env);
      return digestFlag ? { ...info, digest: digestFlag } : info;
    })();
  const files = renderManifests(image, out);
  for (const f of files) console.log(`wrote ${f.startsWith(ROOT) ? f.slice(ROOT.length) : f}`);
  console.log(`image oci://${checkImage(image).ref} sha256 ${image.digest.slice("sha256:".length)}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    main();
  } catch (e) {
    if (!(e instanceof ManifestError)) throw e;
    console.error(`manifests: ${e.message}`);
    process.exitCode = 1;
  }
}
