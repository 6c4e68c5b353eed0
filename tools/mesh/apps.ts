// Starts the mesh's applications (tools/mesh/apps/service.ts): in a pod's network namespace
// through `ip netns exec` (which also mounts the pod's /etc/hosts), or on loopback.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../../tests/harness/envoy.ts";
import { sleep } from "../../tests/harness/envoy.ts";
import type { PodDef } from "./topology.ts";

export interface AppProcess {
  pod: string;
  pid: number;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export interface AppLaunch {
  pod: PodDef;
  /** host:port to listen on. */
  listen: string;
  /** Service name -> URL (and Host header) it calls. */
  upstreams: Record<string, { url: string; host?: string }>;
  /** TCP service name -> where it dials it. */
  tcpUpstreams?: Record<string, { host: string; port: number }>;
  /** Run inside this network namespace (else on the host, for the loopback fallback). */
  netns?: string;
  seed: number;
}

/** Debian's redis-server: no persistence, listening on every address of its pod (or on loopback). */
function redisCommand(listen: string): string[] {
  const i = listen.lastIndexOf(":");
  const [host, port] = [listen.slice(0, i), listen.slice(i + 1)];
  return ["redis-server", "--port", port, "--bind", host === "0.0.0.0" ? "0.0.0.0" : host, "--protected-mode", "no",
    "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", "/tmp", "--loglevel", "notice"];
}

export async function startApp(a: AppLaunch): Promise<AppProcess> {
  const app = a.pod.app!;
  if (app.role === "redis") return launch(a, redisCommand(a.listen), /Ready to accept connections/);
  const config = {
    role: app.role,
    version: a.pod.workload.version,
    listen: a.listen,
    upstreams: a.upstreams,
    tcpUpstreams: a.tcpUpstreams,
    failRate: app.failRate,
    latency: app.latency,
    seed: a.seed,
  };
  const node = [process.execPath, "--import", "tsx", join(ROOT, "tools/mesh/apps/service.ts"), "--config", JSON.stringify(config)];
  return launch(a, node, /^listening /m);
}

async function launch(a: AppLaunch, command: string[], ready: RegExp): Promise<AppProcess> {
  const [cmd, ...args] = a.netns ? ["ip", "netns", "exec", a.netns, ...command] : command;
  // Its own process group: Ctrl-C on the terminal reaches the demo, which stops the apps in order.
  const child = spawn(cmd, args, { cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (c) => (output += c));
  child.stderr?.on("data", (c) => (output += c));
  let exited = false;
  const exit = new Promise<void>((ok) => child.on("exit", () => {
    exited = true;
    ok();
  }));
  const proc: AppProcess = {
    pod: a.pod.key,
    pid: child.pid ?? -1,
    child,
    output: () => output,
    stop: async () => {
      if (exited) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exit;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + 30_000;
  while (!ready.test(output)) {
    if (exited) throw new Error(`${a.pod.key}: app exited before listening:\n${output.slice(-2000)}`);
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`${a.pod.key}: app not listening within 30 s:\n${output.slice(-2000)}`);
    }
    await sleep(50);
  }
  return proc;
}
