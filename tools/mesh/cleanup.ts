// Finding and removing everything a mesh (one prefix) created: containers, the processes it
// started (by the marker in their environment, or inside its namespaces), namespaces, veths,
// the bridge, /etc/netns entries and its state file. Used on every exit path of the demo and
// the test, and by `make demo-down` after a crash. Also the check that nothing is left.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { anyContainers, meshContainers, removeContainers } from "./containers.ts";
import { meshEtcDirs, meshLinks, meshNetns, netnsPids, removeNetwork } from "./pods.ts";
import { alive, endProcesses, isRoot, markedProcesses, processStartTime, run, which } from "./sys.ts";

/** State files of running meshes, and the private podman store's runtime directory. */
const RUN_ROOT = "/run/mesh-telemetry-wasm";

export interface MeshState {
  prefix: string;
  /** The process that runs the mesh (make demo / the test) and its start time, to tell it from a reused pid. */
  pid: number;
  pidStart: number | undefined;
  mode: "containers" | "loopback";
  startedAt: string;
  outDir: string;
  urls?: Record<string, string>;
}

export function stateFile(prefix: string): string {
  return isRoot() ? join(RUN_ROOT, `${prefix}.json`) : join(tmpdir(), `mesh-telemetry-wasm-${prefix}.json`);
}

export function writeState(state: MeshState): void {
  const file = stateFile(state.prefix);
  mkdirSync(join(file, ".."), { recursive: true });
  writeFileSync(file, JSON.stringify(state, null, 2) + "\n");
}

export function readState(prefix: string): MeshState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(prefix), "utf8")) as MeshState;
  } catch {
    return undefined;
  }
}

/** The state of a mesh whose owning process is still running, if any. */
export function runningMesh(prefix: string): MeshState | undefined {
  const s = readState(prefix);
  if (!s || s.pid === process.pid || !alive(s.pid)) return undefined;
  return processStartTime(s.pid) === s.pidStart ? s : undefined;
}

/** Removes everything of a mesh prefix that is still there; returns what it removed. */
export async function sweepMesh(prefix: string): Promise<string[]> {
  const removed: string[] = [];
  const containers = await meshContainers(prefix);
  if (containers.length > 0) {
    await removeContainers(containers);
    removed.push(...containers.map((c) => `container ${c}`));
  }
  const marked = markedProcesses(prefix);
  if (marked.length > 0) {
    await endProcesses(marked.map((p) => p.pid));
    removed.push(...marked.map((p) => `process ${p.pid} (${p.command.slice(0, 80)})`));
  }
  if (isRoot() && which("ip")) removed.push(...await removeNetwork(prefix));
  rmSync(stateFile(prefix), { force: true });
  // The private podman store's runtime directory (runroot, libpod tmp, containers.conf) goes
  // too once no mesh uses it; the image stays in .cache/mesh for the next run.
  if (isRoot() && existsSync(RUN_ROOT) && !readdirSync(RUN_ROOT).some((f) => f.endsWith(".json")) && (await anyContainers()).length === 0) {
    rmSync(RUN_ROOT, { recursive: true, force: true });
  }
  return removed;
}

/** What of a mesh prefix still exists (empty: nothing). */
export async function leftovers(prefix: string): Promise<string[]> {
  const found: string[] = [];
  found.push(...(await meshContainers(prefix)).map((c) => `container ${c}`));
  found.push(...markedProcesses(prefix).map((p) => `process ${p.pid} ${p.command.slice(0, 80)}`));
  if (isRoot() && which("ip")) {
    for (const ns of await meshNetns(prefix)) {
      found.push(`netns ${ns}`);
      found.push(...(await netnsPids(ns)).map((pid) => `process ${pid} in ${ns}`));
    }
    found.push(...(await meshLinks(prefix)).map((l) => `link ${l}`));
    found.push(...meshEtcDirs(prefix));
    // Host rules: only the ACCEPTs allowOnHost adds on a dropping host; none may outlive the mesh.
    const rules = await run("iptables-save", [], { allowFail: true });
    found.push(...rules.stdout.split("\n").filter((l) => l.includes(`${prefix}0`) || l.includes(`mesh-telemetry-wasm:${prefix}`)).map((l) => `host iptables rule: ${l}`));
  }
  if (existsSync(stateFile(prefix))) found.push(`state file ${stateFile(prefix)}`);
  return found;
}
