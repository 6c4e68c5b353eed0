// A local stand-in for istiod + istio-agent: reads Istio WasmPlugin manifests and turns them
// into Envoy filter configs for the harness, the way a sidecar would end up configured.
//
//   istiod:      WasmPlugin -> Envoy Wasm PluginConfig (name <ns>.<name>, root_id = pluginName,
//                configuration = JSON of pluginConfig, failure_policy from failStrategy,
//                vm_config.environment_variables from vmConfig.env), placed by phase/priority on
//                the listeners match.mode selects (CLIENT: outbound, SERVER: inbound).
//   istio-agent: pulls the oci:// image over the registry HTTP API (here: node:http/https, no
//                skopeo), checks `sha256` against the image MANIFEST digest, takes the LAST layer
//                (OCI tar+gzip "compat", or Docker rootfs.diff.tar.gzip), extracts the entry whose
//                basename is plugin.wasm, checks the Wasm magic, caches it and points the VM at the
//                local file. If the pull fails it substitutes an RBAC filter: allow-all (stat
//                prefix wasm-default-allow) for FAIL_OPEN, deny-all (wasm-default-deny, HTTP 403)
//                otherwise, so Envoy keeps serving or refuses, as Istio documents.
//
// Supported spec fields (deploy/README.md lists them): url (oci:// or no scheme), sha256,
// imagePullPolicy, phase, priority, pluginName, pluginConfig, failStrategy, type, match
// (mode, ports), vmConfig.env. Others (selector, targetRef(s), imagePullSecret,
// verificationKey) are refused with a clear message rather than silently ignored.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { join, posix } from "node:path";
import { gunzipSync } from "node:zlib";
import { parseAllDocuments } from "yaml";

/** The manifest itself is wrong (what istiod or the API server would refuse). */
export class WasmPluginError extends Error {}
/** Fetching or unpacking the module failed (what istio-agent answers with the RBAC substitute). */
export class WasmPullError extends Error {}

export const PHASES = ["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"] as const;
export const FAIL_STRATEGIES = ["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"] as const;
export const PULL_POLICIES = ["UNSPECIFIED_POLICY", "IfNotPresent", "Always"] as const;
export const PLUGIN_TYPES = ["UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK"] as const;
export const MODES = ["UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER"] as const;
export const ENV_SOURCES = ["INLINE", "HOST"] as const;

export type Phase = (typeof PHASES)[number];
export type FailStrategy = (typeof FAIL_STRATEGIES)[number];
export type PullPolicy = (typeof PULL_POLICIES)[number];
export type PluginType = (typeof PLUGIN_TYPES)[number];
export type Mode = (typeof MODES)[number];
export type Direction = "inbound" | "outbound";

export interface WasmPluginSpec {
  url: string;
  sha256?: string;
  imagePullPolicy: PullPolicy;
  phase: Phase;
  priority?: number;
  pluginName?: string;
  pluginConfig?: Record<string, unknown>;
  failStrategy: FailStrategy;
  type: PluginType;
  match: Array<{ mode: Mode; ports: number[] }>;
  env: Array<{ name: string; valueFrom: "INLINE" | "HOST"; value?: string }>;
}

export interface WasmPlugin {
  /** WasmPlugin, or Istio >= 1.30's TrafficExtension with `spec.wasm` (same filter either way). */
  kind: "WasmPlugin" | "TrafficExtension";
  name: string;
  namespace: string;
  spec: WasmPluginSpec;
  /** Where it came from, for messages: "file.yaml:12". */
  source: string;
}

export const WASM_PLUGIN_API_VERSION = "extensions.istio.io/v1alpha1";
const SUPPORTED_FIELDS = ["url", "sha256", "imagePullPolicy", "phase", "priority", "pluginName", "pluginConfig", "failStrategy", "type", "match", "vmConfig"];
const UNSUPPORTED_FIELDS = ["selector", "targetRef", "targetRefs", "imagePullSecret", "verificationKey"];
// TrafficExtension (extensions.istio.io/v1alpha1, Istio >= 1.30): placement at the top of the
// spec, the module's fields under `wasm` (or a `lua` filter instead, which this loader refuses).
const TRAFFIC_EXTENSION_PLACEMENT = ["phase", "priority", "match"];
const KINDS = ["WasmPlugin", "TrafficExtension"];

// ---------------------------------------------------------------------------------------------
// Manifest reading, with a type check per field

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "list";
  if (typeof v === "object") return "object";
  return `${typeof v} ${JSON.stringify(v)}`;
}

class Reader {
  constructor(private readonly where: string) {}

  fail(path: string, message: string): never {
    throw new WasmPluginError(`${this.where}: ${path}: ${message}`);
  }

  object(v: unknown, path: string): Record<string, unknown> {
    if (v === null || typeof v !== "object" || Array.isArray(v)) this.fail(path, `expected an object, got ${typeName(v)}`);
    return v as Record<string, unknown>;
  }

  list(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `expected a list, got ${typeName(v)}`);
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== "string") this.fail(path, `expected a string, got ${typeName(v)}`);
    return v;
  }

  integer(v: unknown, path: string, min: number, max: number): number {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `expected an integer from ${min} to ${max}, got ${typeName(v)}`);
    }
    return v;
  }

  oneOf<T extends string>(v: unknown, path: string, values: readonly T[]): T {
    if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
      this.fail(path, `expected one of ${values.join(", ")} (a string), got ${typeName(v)}`);
    }
    return v as T;
  }
}

/** Checks one WasmPlugin object (parsed YAML/JSON) and returns it typed. */
export function checkWasmPlugin(doc: unknown, source = "<manifest>"): WasmPlugin {
  const top = new Reader(source).object(doc, "<document>");
  const meta = new Reader(source).object(top.metadata, "metadata");
  const name = new Reader(source).string(meta.name, "metadata.name");
  const namespace = meta.namespace === undefined ? "default" : new Reader(source).string(meta.namespace, "metadata.namespace");
  const kind = KINDS.includes(top.kind as string) ? (top.kind as WasmPlugin["kind"]) : "WasmPlugin";
  const r = new Reader(`${source}: ${kind} ${namespace}/${name}`);
  if (top.apiVersion !== WASM_PLUGIN_API_VERSION || !KINDS.includes(top.kind as string)) {
    r.fail("apiVersion/kind", `expected ${WASM_PLUGIN_API_VERSION} WasmPlugin or TrafficExtension, got ${String(top.apiVersion)} ${String(top.kind)}`);
  }
  const topSpec = r.object(top.spec, "spec");
  let s = topSpec;
  // Where each field sits, for messages: spec.<field>, or spec.wasm.<field> in a TrafficExtension.
  const at = (key: string) => (kind === "TrafficExtension" && !TRAFFIC_EXTENSION_PLACEMENT.includes(key) ? `spec.wasm.${key}` : `spec.${key}`);
  if (kind === "TrafficExtension") {
    for (const key of Object.keys(topSpec)) {
      if (key === "lua") r.fail("spec.lua", "a Lua extension: valid in Istio, but the local loader only loads Wasm (spec.wasm)");
      if (key === "selector" || key === "targetRefs") r.fail(`spec.${key}`, "valid in Istio but not supported by the local loader (it configures one proxy)");
      if (key !== "wasm" && !TRAFFIC_EXTENSION_PLACEMENT.includes(key)) r.fail(`spec.${key}`, `unknown field (supported: wasm, ${TRAFFIC_EXTENSION_PLACEMENT.join(", ")})`);
    }
    if (topSpec.wasm === undefined) r.fail("spec.wasm", "required (exactly one of wasm or lua)");
    const wasm = r.object(topSpec.wasm, "spec.wasm");
    for (const key of Object.keys(wasm)) {
      if (TRAFFIC_EXTENSION_PLACEMENT.includes(key)) r.fail(`spec.wasm.${key}`, `unknown field (${key} is spec.${key} in a TrafficExtension)`);
    }
    s = { ...wasm };
    for (const key of TRAFFIC_EXTENSION_PLACEMENT) if (topSpec[key] !== undefined) s[key] = topSpec[key];
  }
  for (const key of Object.keys(s)) {
    if (UNSUPPORTED_FIELDS.includes(key)) r.fail(at(key), "valid in Istio but not supported by the local loader (it configures one proxy)");
    if (!SUPPORTED_FIELDS.includes(key)) r.fail(at(key), `unknown field (supported: ${SUPPORTED_FIELDS.join(", ")})`);
  }
  if (s.url === undefined) r.fail(at("url"), "required");
  const url = r.string(s.url, at("url"));
  if (url.length === 0) r.fail(at("url"), "must not be empty");
  let sha256: string | undefined;
  if (s.sha256 !== undefined) {
    sha256 = r.string(s.sha256, at("sha256"));
    if (!/^([a-f0-9]{64})?$/.test(sha256)) r.fail(at("sha256"), `expected 64 lowercase hex digits (the image manifest digest without "sha256:"), got ${JSON.stringify(sha256)}`);
    if (sha256 === "") sha256 = undefined;
  }
  const spec: WasmPluginSpec = {
    url,
    sha256,
    imagePullPolicy: s.imagePullPolicy === undefined ? "UNSPECIFIED_POLICY" : r.oneOf(s.imagePullPolicy, at("imagePullPolicy"), PULL_POLICIES),
    phase: s.phase === undefined ? "UNSPECIFIED_PHASE" : r.oneOf(s.phase, at("phase"), PHASES),
    priority: s.priority === undefined || s.priority === null ? undefined : r.integer(s.priority, at("priority"), -(2 ** 31), 2 ** 31 - 1),
    pluginName: s.pluginName === undefined ? undefined : r.string(s.pluginName, at("pluginName")),
    pluginConfig: s.pluginConfig === undefined ? undefined : r.object(s.pluginConfig, at("pluginConfig")),
    failStrategy: s.failStrategy === undefined ? "FAIL_CLOSE" : r.oneOf(s.failStrategy, at("failStrategy"), FAIL_STRATEGIES),
    type: s.type === undefined ? "UNSPECIFIED_PLUGIN_TYPE" : r.oneOf(s.type, at("type"), PLUGIN_TYPES),
    match: [],
    env: [],
  };
  if (spec.pluginName !== undefined && (spec.pluginName.length < 1 || spec.pluginName.length > 256)) {
    r.fail(at("pluginName"), "must be 1 to 256 characters");
  }
  if (s.match !== undefined) {
    r.list(s.match, "spec.match").forEach((m, i) => {
      const mo = r.object(m, `spec.match[${i}]`);
      for (const key of Object.keys(mo)) if (key !== "mode" && key !== "ports") r.fail(`spec.match[${i}].${key}`, "unknown field (supported: mode, ports)");
      const mode = mo.mode === undefined ? "UNDEFINED" : r.oneOf(mo.mode, `spec.match[${i}].mode`, MODES);
      const ports = mo.ports === undefined ? [] : r.list(mo.ports, `spec.match[${i}].ports`).map((p, j) => {
        const po = r.object(p, `spec.match[${i}].ports[${j}]`);
        return r.integer(po.number, `spec.match[${i}].ports[${j}].number`, 1, 65535);
      });
      spec.match.push({ mode, ports });
    });
  }
  if (s.vmConfig !== undefined) {
    const vm = r.object(s.vmConfig, at("vmConfig"));
    for (const key of Object.keys(vm)) if (key !== "env") r.fail(`${at("vmConfig")}.${key}`, "unknown field (supported: env)");
    if (vm.env !== undefined) {
      const seen = new Set<string>();
      r.list(vm.env, `${at("vmConfig")}.env`).forEach((e, i) => {
        const p = `${at("vmConfig")}.env[${i}]`;
        const eo = r.object(e, p);
        const envName = r.string(eo.name, `${p}.name`);
        if (envName.length === 0) r.fail(`${p}.name`, "must not be empty");
        if (seen.has(envName)) r.fail(`${p}.name`, `duplicate name ${JSON.stringify(envName)}`);
        seen.add(envName);
        const valueFrom = eo.valueFrom === undefined ? "INLINE" : r.oneOf(eo.valueFrom, `${p}.valueFrom`, ENV_SOURCES);
        const value = eo.value === undefined ? undefined : r.string(eo.value, `${p}.value`);
        if (valueFrom === "HOST" && value !== undefined) r.fail(`${p}.value`, "value may only be set when valueFrom is INLINE");
        spec.env.push({ name: envName, valueFrom, value });
      });
    }
  }
  return { kind, name, namespace, spec, source };
}

/** All WasmPlugins and TrafficExtensions in a YAML stream (other kinds are skipped). */
export function parseWasmPlugins(text: string, source = "<manifest>"): WasmPlugin[] {
  const out: WasmPlugin[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new WasmPluginError(`${source}: YAML: ${doc.errors[0].message}`);
    const value = doc.toJS();
    if (value === null || value === undefined) continue;
    const line = text.slice(0, doc.range[0]).split("\n").length;
    if (typeof value === "object" && !Array.isArray(value) && !KINDS.includes(value.kind)) continue;
    out.push(checkWasmPlugin(value, `${source}:${line}`));
  }
  return out;
}

export function readWasmPlugins(file: string): WasmPlugin[] {
  return parseWasmPlugins(readFileSync(file, "utf8"), file);
}

// ---------------------------------------------------------------------------------------------
// OCI pull over the distribution API

export interface ImageReference {
  /** host[:port] as dialled. */
  registry: string;
  repository: string;
  /** Tag or `sha256:<hex>`. */
  reference: string;
  /** http for loopback and insecure registries, else https. */
  scheme: "http" | "https";
}

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  return LOOPBACK_HOSTS.has(host) || (isIP(h) === 4 && h.startsWith("127."));
}

/** Parses `oci://host:port/repo:tag`, `oci://host/repo@sha256:...` (and the scheme-less form). */
export function parseImageUrl(url: string, insecureRegistries: string[] = []): ImageReference {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  const scheme = m ? m[1].toLowerCase() : "oci";
  if (scheme !== "oci") {
    throw new WasmPluginError(`url ${url}: scheme ${scheme}:// is valid in Istio but the local loader fetches only oci:// images`);
  }
  let rest = m ? url.slice(m[0].length) : url;
  let reference = "latest";
  const at = rest.indexOf("@");
  if (at >= 0) {
    reference = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[a-f0-9]{64}$/.test(reference)) throw new WasmPluginError(`url ${url}: digest must be sha256:<64 hex>`);
  } else {
    const colon = rest.lastIndexOf(":");
    if (colon > rest.lastIndexOf("/")) {
      reference = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
    }
  }
  const slash = rest.indexOf("/");
  const first = slash >= 0 ? rest.slice(0, slash) : "";
  let registry: string;
  let repository: string;
  if (first && (first.includes(".") || first.includes(":") || first === "localhost" || first.startsWith("["))) {
    registry = first;
    repository = rest.slice(slash + 1);
  } else {
    registry = "index.docker.io"; // Istio's (go-containerregistry's) default
    repository = rest.includes("/") ? rest : `library/${rest}`;
  }
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repository)) {
    throw new WasmPluginError(`url ${url}: invalid repository name ${JSON.stringify(repository)}`);
  }
  if (!reference.startsWith("sha256:") && !/^[\w][\w.-]{0,127}$/.test(reference)) {
    throw new WasmPluginError(`url ${url}: invalid tag ${JSON.stringify(reference)}`);
  }
  const host = registry.replace(/:\d+$/, "");
  const insecure = isLoopback(host) || insecureRegistries.includes(registry) || insecureRegistries.includes(host);
  return { registry, repository, reference, scheme: insecure ? "http" : "https" };
}

interface Fetched { status: number; headers: http.IncomingHttpHeaders; body: Buffer; url: string }

function get(url: string, headers: Record<string, string>, timeoutMs: number, maxBytes: number, redirects = 5): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith("https:") ? https : http;
    const req = mod.request(url, { method: "GET", headers, agent: false }, (res) => {
      const status = res.statusCode ?? 0;
      if ([301, 302, 303, 307, 308].includes(status) && res.headers.location && redirects > 0) {
        res.resume();
        const next = new URL(res.headers.location, url).toString();
        // Blob redirects go to storage: do not carry registry headers along.
        get(next, { Accept: headers.Accept ?? "*/*" }, timeoutMs, maxBytes, redirects - 1).then(resolve, reject);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) {
          req.destroy(new Error(`response larger than ${maxBytes} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on("end", () => resolve({ status, headers: res.headers, body: Buffer.concat(chunks), url }));
      res.on("error", reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

const sha256hex = (b: Buffer) => createHash("sha256").update(b).digest("hex");

const MEDIA = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
};

/** istio-agent's default ISTIO_WASM_MAX_BINARY_SIZE_BYTES. */
export const MAX_WASM_BYTES = 256 << 20;

/** Regular files of a tar stream (ustar, pax `path`, GNU long names), in order. */
export function tarFiles(tar: Buffer): Array<{ name: string; data: Buffer }> {
  const files: Array<{ name: string; data: Buffer }> = [];
  const str = (b: Buffer) => b.toString("utf8").replace(/\0.*$/s, "");
  let longName: string | undefined;
  for (let off = 0; off + 512 <= tar.length;) {
    const h = tar.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    const sizeField = h.subarray(124, 136);
    // Base-256 sizes (high bit set) are for files > 8 GiB: far beyond a Wasm module.
    if (sizeField[0] & 0x80) throw new WasmPullError("layer tar has a base-256 size field (a file over 8 GiB)");
    const size = parseInt(str(sizeField).trim() || "0", 8);
    if (!Number.isFinite(size) || off + 512 + size > tar.length) throw new WasmPullError("layer tar is truncated or corrupt");
    const type = String.fromCharCode(h[156] || 0x30);
    const data = tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === "x") {
      longName = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString("utf8"))?.[1] ?? longName;
      continue;
    }
    if (type === "L") {
      longName = str(data);
      continue;
    }
    if (type === "g") continue;
    const prefix = str(h.subarray(345, 500));
    const name = longName ?? (prefix ? `${prefix}/${str(h.subarray(0, 100))}` : str(h.subarray(0, 100)));
    longName = undefined;
    if (type === "0" || type === "7") files.push({ name, data });
  }
  return files;
}

export function isWasmBinary(b: Buffer): boolean {
  return b.length >= 8 && b[0] === 0x00 && b[1] === 0x61 && b[2] === 0x73 && b[3] === 0x6d;
}

export interface PullOptions {
  /** Where modules are cached (created if missing). */
  cacheDir: string;
  /** Expected image manifest digest, hex (WasmPlugin `sha256`). */
  sha256?: string;
  pullPolicy?: PullPolicy;
  /** Per-request timeout (istio-agent: WASM_HTTP_REQUEST_TIMEOUT, 15 s). */
  timeoutMs?: number;
  /** host[:port] entries to reach over plain HTTP (istio-agent: WASM_INSECURE_REGISTRIES); loopback always is. */
  insecureRegistries?: string[];
}

export interface PulledModule {
  /** Local file holding plugin.wasm. */
  path: string;
  bytes: Buffer;
  /** `sha256:<hex>` of the image manifest. */
  manifestDigest: string;
  fromCache: boolean;
}

/** Pulls an oci:// Wasm image like istio-agent and returns the cached plugin.wasm. Throws WasmPullError. */
export async function pullWasmModule(url: string, opts: PullOptions): Promise<PulledModule> {
  const ref = parseImageUrl(url, opts.insecureRegistries);
  const timeoutMs = opts.timeoutMs ?? 15000;
  const expected = opts.sha256 || (ref.reference.startsWith("sha256:") ? ref.reference.slice(7) : undefined);
  let policy = opts.pullPolicy ?? "UNSPECIFIED_POLICY";
  if (policy === "UNSPECIFIED_POLICY") policy = ref.reference === "latest" ? "Always" : "IfNotPresent";
  mkdirSync(opts.cacheDir, { recursive: true });
  if (policy === "IfNotPresent" && expected) {
    const cached = join(opts.cacheDir, `${expected}.wasm`);
    if (existsSync(cached)) {
      return { path: cached, bytes: readFileSync(cached), manifestDigest: `sha256:${expected}`, fromCache: true };
    }
  }

  const base = `${ref.scheme}://${ref.registry}/v2/${ref.repository}`;
  const fetchOrFail = async (what: string, target: string, accept: string, maxBytes: number): Promise<Fetched> => {
    let res: Fetched;
    try {
      res = await get(target, { Accept: accept }, timeoutMs, maxBytes);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new WasmPullError(`could not fetch ${what} of ${url}: registry ${ref.registry} unreachable (${err.code ?? err.message})`);
    }
    if (res.status === 401 || res.status === 403) {
      throw new WasmPullError(`could not fetch ${what} of ${url}: registry ${ref.registry} answered HTTP ${res.status} (authentication is not supported by the local loader)`);
    }
    if (res.status === 404) {
      const missing = what === "the manifest" ? `${ref.repository}${ref.reference.startsWith("sha256:") ? "@" : ":"}${ref.reference}` : what;
      throw new WasmPullError(`could not fetch ${what} of ${url}: ${missing} not found in registry ${ref.registry} (HTTP 404 ${res.body.toString("utf8").slice(0, 200).trim()})`);
    }
    if (res.status !== 200) {
      throw new WasmPullError(`could not fetch ${what} of ${url}: registry ${ref.registry} answered HTTP ${res.status} ${res.body.toString("utf8").slice(0, 200).trim()}`);
    }
    return res;
  };

  // 1. The manifest, hashed exactly as served: its digest is what `sha256` pins.
  const accept = [MEDIA.ociManifest, MEDIA.dockerManifest, MEDIA.ociIndex, MEDIA.dockerList].join(", ");
  const res = await fetchOrFail("the manifest", `${base}/manifests/${ref.reference}`, accept, 4 << 20);
  const manifestHex = sha256hex(res.body);
  if (ref.reference.startsWith("sha256:") && ref.reference !== `sha256:${manifestHex}`) {
    throw new WasmPullError(`registry ${ref.registry} served a manifest hashing to sha256:${manifestHex} for ${ref.reference}`);
  }
  let manifest: { schemaVersion?: number; mediaType?: string; layers?: Array<{ mediaType?: string; digest?: string; size?: number }>; manifests?: unknown };
  try {
    manifest = JSON.parse(res.body.toString("utf8"));
  } catch {
    throw new WasmPullError(`could not fetch image ${url}: the manifest is not JSON`);
  }
  const mediaType = manifest.mediaType ?? String(res.headers["content-type"] ?? "");
  if (manifest.manifests !== undefined || mediaType === MEDIA.ociIndex || mediaType === MEDIA.dockerList) {
    throw new WasmPullError(`${url} is a multi-platform index; the local loader (like a sidecar on linux/amd64) needs a single image manifest: push a plain manifest`);
  }
  if (expected && expected !== manifestHex) {
    throw new WasmPullError(`module downloaded from ${url} has checksum ${manifestHex}, which does not match: ${expected}`);
  }

  // 2. The last layer, by the compat (OCI tar+gzip) or Docker rules.
  const layers = manifest.layers ?? [];
  if (manifest.schemaVersion !== 2 || layers.length === 0) {
    throw new WasmPullError(`could not extract Wasm file from ${url}: number of layers must be greater than zero (schemaVersion ${manifest.schemaVersion})`);
  }
  const layer = layers[layers.length - 1];
  const wantLayer = mediaType === MEDIA.dockerManifest ? MEDIA.dockerLayer : MEDIA.ociLayerGzip;
  if (layer.mediaType !== wantLayer) {
    throw new WasmPullError(
      `the given image is in invalid format as an OCI image: could not parse as compat variant: invalid media type ${layer.mediaType} (expect ${wantLayer})` +
      ` (the local loader reads compat/Docker images; the two-layer "oci" artifact variant is not implemented)`,
    );
  }
  if (!layer.digest || !/^sha256:[a-f0-9]{64}$/.test(layer.digest)) throw new WasmPullError(`${url}: last layer has no sha256 digest`);
  const blob = (await fetchOrFail(`layer ${layer.digest}`, `${base}/blobs/${layer.digest}`, "*/*", MAX_WASM_BYTES)).body;
  if (`sha256:${sha256hex(blob)}` !== layer.digest) throw new WasmPullError(`${url}: layer ${layer.digest} does not hash to its digest`);
  if (layer.size !== undefined && layer.size !== blob.length) throw new WasmPullError(`${url}: layer ${layer.digest} is ${blob.length} bytes, the manifest says ${layer.size}`);

  // 3. gunzip, untar, take the first entry named plugin.wasm (any directory, like filepath.Base).
  let tar: Buffer;
  try {
    tar = gunzipSync(blob, { maxOutputLength: MAX_WASM_BYTES });
  } catch (e) {
    throw new WasmPullError(`could not extract Wasm file from ${url}: failed to parse layer as tar.gz: ${(e as Error).message}`);
  }
  const files = tarFiles(tar);
  const entry = files.find((f) => posix.basename(f.name) === "plugin.wasm");
  if (!entry) {
    const names = files.map((f) => f.name).join(", ") || "no files";
    throw new WasmPullError(`could not extract Wasm file from ${url}: plugin.wasm not found in the archive (the last layer holds: ${names})`);
  }
  if (!isWasmBinary(entry.data)) throw new WasmPullError(`fetched Wasm binary from ${url} is invalid: ${entry.name} does not start with the Wasm magic \\0asm`);

  // 4. Cache it under the manifest digest (write + rename, so readers never see half a file).
  const path = join(opts.cacheDir, `${manifestHex}.wasm`);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, entry.data);
  renameSync(tmp, path);
  return { path, bytes: entry.data, manifestDigest: `sha256:${manifestHex}`, fromCache: false };
}

// ---------------------------------------------------------------------------------------------
// Translation to Envoy filters

/** Filter order within a chain: istiod puts AUTHN, AUTHZ, STATS, then UNSPECIFIED_PHASE last (before the router). */
export const PHASE_ORDER: Record<Phase, number> = { AUTHN: 0, AUTHZ: 1, STATS: 2, UNSPECIFIED_PHASE: 3 };

export const DEFAULT_ALLOW_STAT_PREFIX = "wasm-default-allow";
export const DEFAULT_DENY_STAT_PREFIX = "wasm-default-deny";

export interface LoadedWasmPlugin {
  plugin: WasmPlugin;
  /** `<namespace>.<name>`: the filter's and the Wasm plugin's name, as istiod names them. */
  resourceName: string;
  kind: "http" | "network";
  phase: Phase;
  /** Sort key: PHASE_ORDER, then higher priority first. */
  order: { phase: number; priority: number };
  /** Listeners the plugin goes on: CLIENT = outbound, SERVER = inbound, else both. */
  directions: Direction[];
  /** Destination ports it is limited to (empty: all). */
  ports: number[];
  /** The Envoy filter (envoy.filters.http.wasm / envoy.filters.network.wasm), or the RBAC substitute. */
  filter: any;
  failurePolicy: "FAIL_OPEN" | "FAIL_CLOSED" | "FAIL_RELOAD";
  /** The module pulled for it (absent when the pull failed). */
  module?: PulledModule;
  /** Why the RBAC substitute is there (the pull error), if it is. */
  pullError?: string;
  substitute?: "allow" | "deny";
}

export interface LoadOptions extends Omit<PullOptions, "sha256" | "pullPolicy"> {
  /** Wasm runtime (istiod: envoy.wasm.runtime.v8). */
  runtime?: string;
}

function failurePolicy(s: FailStrategy): LoadedWasmPlugin["failurePolicy"] {
  return s === "FAIL_OPEN" ? "FAIL_OPEN" : s === "FAIL_RELOAD" ? "FAIL_RELOAD" : "FAIL_CLOSED";
}

function directionsOf(spec: WasmPluginSpec): { directions: Direction[]; ports: number[] } {
  if (spec.match.length === 0) return { directions: ["inbound", "outbound"], ports: [] };
  const directions = new Set<Direction>();
  const ports = new Set<number>();
  let allPorts = false;
  for (const m of spec.match) {
    if (m.mode === "CLIENT" || m.mode === "CLIENT_AND_SERVER" || m.mode === "UNDEFINED") directions.add("outbound");
    if (m.mode === "SERVER" || m.mode === "CLIENT_AND_SERVER" || m.mode === "UNDEFINED") directions.add("inbound");
    if (m.ports.length === 0) allPorts = true;
    for (const p of m.ports) ports.add(p);
  }
  return { directions: [...directions].sort(), ports: allPorts ? [] : [...ports].sort((a, b) => a - b) };
}

/** The Envoy Wasm PluginConfig istiod builds, with the code pointed at the local file as istio-agent does. */
export function wasmPluginConfig(p: WasmPlugin, wasmPath: string, runtime = "envoy.wasm.runtime.v8"): any {
  const s = p.spec;
  const config: any = { name: `${p.namespace}.${p.name}`, root_id: s.pluginName ?? "" };
  if (s.pluginConfig && Object.keys(s.pluginConfig).length > 0) {
    config.configuration = { "@type": "type.googleapis.com/google.protobuf.StringValue", value: JSON.stringify(s.pluginConfig) };
  }
  config.failure_policy = failurePolicy(s.failStrategy);
  const vm: any = { runtime, code: { local: { filename: wasmPath } } };
  // istio-agent strips its own ISTIO_META_* variables; what is left is vmConfig.env.
  const inline = s.env.filter((e) => e.valueFrom === "INLINE");
  const host = s.env.filter((e) => e.valueFrom === "HOST").map((e) => e.name);
  if (inline.length > 0 || host.length > 0) {
    vm.environment_variables = {};
    if (inline.length > 0) vm.environment_variables.key_values = Object.fromEntries(inline.map((e) => [e.name, e.value ?? ""]));
    if (host.length > 0) vm.environment_variables.host_env_keys = host;
  }
  config.vm_config = vm;
  return config;
}

/** istio-agent's substitute for a module it could not fetch. */
export function rbacSubstitute(name: string, kind: "http" | "network", allow: boolean): any {
  if (kind === "http") {
    return {
      name,
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        // No rules: allow all. Empty rules: deny all (403).
        ...(allow ? {} : { rules: {} }),
        rules_stat_prefix: allow ? DEFAULT_ALLOW_STAT_PREFIX : DEFAULT_DENY_STAT_PREFIX,
      },
    };
  }
  return {
    name,
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC",
      ...(allow ? {} : { rules: {} }),
      stat_prefix: allow ? DEFAULT_ALLOW_STAT_PREFIX : DEFAULT_DENY_STAT_PREFIX,
    },
  };
}

/**
 * Loads one WasmPlugin: pulls its module and returns the Envoy filter. A pull failure does not
 * throw: like istio-agent, the result carries the RBAC substitute (allow-all for FAIL_OPEN,
 * deny-all otherwise) and the error in `pullError`. Manifest errors throw WasmPluginError.
 */
export async function loadWasmPlugin(p: WasmPlugin, opts: LoadOptions): Promise<LoadedWasmPlugin> {
  const s = p.spec;
  const kind = s.type === "NETWORK" ? "network" : "http";
  const resourceName = `${p.namespace}.${p.name}`;
  parseImageUrl(s.url, opts.insecureRegistries); // manifest errors (scheme, names) throw here, before any pull
  const base = {
    plugin: p,
    resourceName,
    kind,
    phase: s.phase,
    order: { phase: PHASE_ORDER[s.phase], priority: s.priority ?? -(2 ** 31) },
    ...directionsOf(s),
    failurePolicy: failurePolicy(s.failStrategy),
  } as const;
  let module: PulledModule;
  try {
    module = await pullWasmModule(s.url, { ...opts, sha256: s.sha256, pullPolicy: s.imagePullPolicy });
  } catch (e) {
    if (!(e instanceof WasmPullError)) throw e;
    const allow = s.failStrategy === "FAIL_OPEN";
    return { ...base, filter: rbacSubstitute(resourceName, kind, allow), pullError: e.message, substitute: allow ? "allow" : "deny" };
  }
  const typeUrl = kind === "http"
    ? "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
    : "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm";
  const filter = { name: resourceName, typed_config: { "@type": typeUrl, config: wasmPluginConfig(p, module.path, opts.runtime) } };
  return { ...base, filter, module };
}

/** Reads a manifest file and loads every WasmPlugin in it. */
export async function loadWasmPluginFile(file: string, opts: LoadOptions): Promise<LoadedWasmPlugin[]> {
  const plugins = readWasmPlugins(file);
  const out: LoadedWasmPlugin[] = [];
  for (const p of plugins) out.push(await loadWasmPlugin(p, opts));
  return out;
}

/** Whether a loaded plugin goes on a listener of this direction (and destination port, if given). */
export function appliesTo(p: LoadedWasmPlugin, direction: Direction, port?: number): boolean {
  if (!p.directions.includes(direction)) return false;
  return p.ports.length === 0 || port === undefined || p.ports.includes(port);
}

/**
 * The filters for one listener, in istiod's order: by phase (AUTHN, AUTHZ, STATS, unspecified),
 * then higher priority first, then by name. HTTP filters go before the router; network filters
 * before tcp_proxy / the HTTP connection manager.
 */
export function filtersFor(plugins: LoadedWasmPlugin[], kind: "http" | "network", direction: Direction, port?: number): any[] {
  return plugins
    .filter((p) => p.kind === kind && appliesTo(p, direction, port))
    .sort((a, b) => a.order.phase - b.order.phase || b.order.priority - a.order.priority || a.resourceName.localeCompare(b.resourceName))
    .map((p) => p.filter);
}
