// Small system helpers for the mesh: running commands without blocking the event loop (so
// Ctrl-C is handled promptly), finding the processes a mesh started, and ending them by pid.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { sleep } from "../../tests/harness/envoy.ts";

export class CommandError extends Error {
  constructor(message: string, readonly code: number | null, readonly output: string) {
    super(message);
  }
}

export interface RunOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFail?: boolean;
  timeoutMs?: number;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (asynchronously); throws CommandError with its output on failure. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (c) => (stdout += c));
    child.stderr?.on("data", (c) => (stderr += c));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs) : undefined;
    child.on("error", (err) => {
      clearTimeout(timer);
      if (opts.allowFail) resolve({ code: 127, stdout, stderr: stderr + err.message });
      else reject(new CommandError(`could not run ${cmd}: ${err.message}`, null, ""));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0 || opts.allowFail) return resolve({ code, stdout, stderr });
      const output = `${stdout}${stderr}`.trim().split("\n").slice(-25).join("\n");
      reject(new CommandError(`${cmd} ${args.join(" ")}\nexited with ${code}:\n${output}`, code, output));
    });
    if (child.stdin) {
      child.stdin.on("error", () => {}); // a command that exits without reading: its exit status tells
      child.stdin.end(opts.input);
    }
  });
}

/** Full path of a tool on PATH (also /usr/sbin and /sbin, where iptables and ip live), or undefined. */
export function which(tool: string): string | undefined {
  const r = spawnSync("sh", ["-c", `PATH="$PATH:/usr/sbin:/sbin" command -v ${tool}`], { encoding: "utf8" });
  const path = r.stdout.trim();
  return r.status === 0 && path ? path : undefined;
}

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/**
 * The environment variable every process a mesh starts inherits (`<name>=<prefix>`). The
 * kernel keeps a process's initial environment in /proc/<pid>/environ, so the processes a
 * mesh started (apps, Prometheus, Zipkin, the registry) can be found again after a crash of
 * the process that started them, and only those.
 */
export const MARKER = "MESH_TELEMETRY_WASM_MESH";

export function setMarker(prefix: string): void {
  // Changing process.env does not change this process's own /proc/self/environ: only the
  // children started from now on carry the marker.
  process.env[MARKER] = prefix;
}

export interface MarkedProcess {
  pid: number;
  command: string;
}

/** Live processes whose initial environment holds MARKER=prefix (never this process). */
export function markedProcesses(prefix: string): MarkedProcess[] {
  const want = `${MARKER}=${prefix}`;
  const out: MarkedProcess[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
      if (!env.includes(want)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
      if (/^\d+ \(.*\) Z /s.test(stat)) continue; // zombie: already dead, its parent reaps it
      const command = readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").filter(Boolean).join(" ");
      out.push({ pid, command });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

/** The start time of a process (clock ticks since boot), to tell a pid from a reused one. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

export function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return !/^\d+ \(.*\) Z /s.test(stat);
  } catch {
    return false;
  }
}

/** SIGTERM to each pid, SIGKILL to those still alive after graceMs. Returns the pids signalled. */
export async function endProcesses(pids: number[], graceMs = 3000): Promise<number[]> {
  const signalled: number[] = [];
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGTERM");
      signalled.push(pid);
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (signalled.some(alive) && Date.now() < deadline) await sleep(50);
  for (const pid of signalled.filter(alive)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  const killDeadline = Date.now() + 2000;
  while (signalled.some(alive) && Date.now() < killDeadline) await sleep(50);
  return signalled;
}

/** `[  12.3 s] text` progress lines, timed from when the reporter was made. */
export function stepper(started = Date.now(), write: (line: string) => void = (l) => console.log(l)) {
  const step = (text: string) => write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);
  step.started = started;
  return step;
}
export type Step = (text: string) => void;
