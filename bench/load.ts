// Load generators and the measurements around them: h2load (closed loop, a fixed request count,
// HTTP/1.1 with --h1 or HTTP/2), fortio (a fixed rate, with every request's latency taken from
// its access log, so percentiles are exact rather than read off fortio's histogram buckets), and
// the CPU time Envoy's own kernel accounting charges to a process (/proc/<pid>/stat).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../tests/harness/envoy.ts";
import { onCpu } from "./topology.ts";

// `make bench` installs the pinned fortio into .cache/fortio-<version>/ and passes FORTIO_BIN;
// run directly, the driver looks there, then in ~/go/bin, then on PATH.
export const FORTIO =
  process.env.FORTIO_BIN ??
  [join(ROOT, ".cache/fortio-1.68.0/fortio"), join(process.env.HOME ?? "/root", "go/bin/fortio")].find((p) => existsSync(p)) ??
  "fortio";
export const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** utime + stime of a process, all threads, in clock ticks (fields 14 and 15 of /proc/<pid>/stat). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * Run time of every thread of a process in nanoseconds (/proc/<pid>/task/<tid>/schedstat), far
 * finer than clock ticks; used where the CPU per request is small (the host-call probe).
 */
export function cpuNs(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // thread exited meanwhile
    }
  }
  return total;
}

/** Like withCpu, with schedstat nanoseconds (converted to microseconds). */
export async function withCpuFine<T>(pids: number[], fn: () => Promise<T>): Promise<{ result: T; cpuUs: number[] }> {
  const before = pids.map(cpuNs);
  const result = await fn();
  const after = pids.map(cpuNs);
  return { result, cpuUs: after.map((a, i) => (a - before[i]) / 1000) };
}

export function ticksToMicros(ticks: number): number {
  return (ticks * 1e6) / CLOCK_TICKS;
}

/** Runs `fn` and returns, per pid, the CPU it used meanwhile in microseconds. */
export async function withCpu<T>(pids: number[], fn: () => Promise<T>): Promise<{ result: T; cpuUs: number[] }> {
  const before = pids.map(cpuTicks);
  const result = await fn();
  const after = pids.map(cpuTicks);
  return { result, cpuUs: after.map((a, i) => ticksToMicros(a - before[i])) };
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

export interface ClosedLoopResult {
  requests: number;
  succeeded: number;
  failed: number;
  seconds: number;
  rps: number;
}

export interface H2loadOptions {
  port: number;
  requests: number;
  connections: number;
  /** Concurrent streams per connection (HTTP/2 only). */
  streams?: number;
  http1: boolean;
  cpu: number | null;
  timeoutMs?: number;
}

/** h2load: a fixed number of requests as fast as the target answers (closed loop). */
export async function h2load(o: H2loadOptions): Promise<ClosedLoopResult> {
  const args = ["-n", String(o.requests), "-c", String(o.connections), "-t", "1"];
  if (o.http1) args.push("--h1");
  else args.push("-m", String(o.streams ?? 1));
  args.push(`http://127.0.0.1:${o.port}/`);
  const [cmd, full] = onCpu(o.cpu, "h2load", args);
  const r = await run(cmd, full, o.timeoutMs ?? 600000);
  const fin = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(r.stdout);
  const req = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(r.stdout);
  const codes = /status codes: (\d+) 2xx/.exec(r.stdout);
  if (!fin || !req || !codes) throw new Error(`h2load: unexpected output (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  const seconds = Number(fin[1]) / (fin[2] === "ms" ? 1000 : 1);
  const ok = Number(codes[1]);
  return { requests: Number(req[1]), succeeded: ok, failed: Number(req[1]) - ok, seconds, rps: Number(fin[3]) };
}

export interface FixedRateResult {
  requests: number;
  ok: number;
  actualQps: number;
  seconds: number;
  /** Exact percentiles of every request's latency, microseconds. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** fortio's own (histogram-interpolated) p90 and p99, microseconds, as a cross-check. */
  fortioP90: number;
  fortioP99: number;
}

export interface FortioOptions {
  port: number;
  qps: number;
  connections: number;
  requests: number;
  cpu: number | null;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/**
 * fortio at a fixed rate over keep-alive HTTP/1.1 connections, spread uniformly and without
 * catch-up bursts (Istio's settings), for an exact number of requests.
 */
export async function fortio(o: FortioOptions): Promise<FixedRateResult> {
  const dir = mkdtempSync(join(tmpdir(), "bench-fortio-"));
  try {
    const access = join(dir, "access.json");
    const json = join(dir, "result.json");
    const args = [
      "load", "-quiet", "-qps", String(o.qps), "-c", String(o.connections), "-n", String(o.requests),
      "-uniform", "-nocatchup", "-keepalive=true", "-r", "0.000001", "-p", "50,90,99,99.9",
      "-access-log-file", access, "-json", json, `http://127.0.0.1:${o.port}/`,
    ];
    const [cmd, full] = onCpu(o.cpu, FORTIO, args);
    const r = await run(cmd, full, Math.max(60000, (o.requests / o.qps) * 4000));
    if (r.code !== 0) throw new Error(`fortio exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    const result = JSON.parse(readFileSync(json, "utf8"));
    const latencies: number[] = [];
    let ok = 0;
    for (const line of readFileSync(access, "utf8").split("\n")) {
      if (!line) continue;
      const entry = JSON.parse(line);
      latencies.push(entry.latency * 1e6);
      if (entry.ok) ok++;
    }
    latencies.sort((a, b) => a - b);
    const fp = (p: number) => 1e6 * (result.DurationHistogram.Percentiles.find((x: any) => x.Percentile === p)?.Value ?? NaN);
    const codes: Record<string, number> = result.RetCodes ?? {};
    return {
      requests: latencies.length,
      ok: Math.min(ok, codes["200"] ?? 0),
      actualQps: result.ActualQPS,
      seconds: result.ActualDuration / 1e9,
      p50: percentile(latencies, 50),
      p90: percentile(latencies, 90),
      p99: percentile(latencies, 99),
      p999: percentile(latencies, 99.9),
      max: latencies[latencies.length - 1],
      fortioP90: fp(90),
      fortioP99: fp(99),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
