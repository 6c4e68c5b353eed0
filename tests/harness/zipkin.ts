// A real Zipkin server (io.zipkin:zipkin-server exec jar from Maven Central, in-memory storage)
// on a loopback port, and a client for the parts of its v2 API the tests and the demo read.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { eventually, freePort, httpRequest, ROOT, stopProcess } from "./envoy.ts";

export const ZIPKIN_VERSION = "3.5.1";
export const ZIPKIN_JAR = join(ROOT, ".cache", `zipkin-server-${ZIPKIN_VERSION}-exec.jar`);

export interface ZipkinEndpoint {
  serviceName?: string;
  ipv4?: string;
  port?: number;
}

export interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name?: string;
  kind?: "CLIENT" | "SERVER" | "PRODUCER" | "CONSUMER";
  timestamp?: number;
  duration?: number;
  localEndpoint?: ZipkinEndpoint;
  remoteEndpoint?: ZipkinEndpoint;
  tags?: Record<string, string>;
  shared?: boolean;
}

export class Zipkin {
  constructor(
    readonly port: number,
    private child: ChildProcess,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private async get(path: string): Promise<any> {
    const res = await httpRequest(`${this.url}${path}`);
    if (res.status !== 200) throw new Error(`zipkin ${path}: ${res.status} ${res.body}`);
    return JSON.parse(res.body);
  }

  trace(traceId: string): Promise<ZipkinSpan[]> {
    return this.get(`/api/v2/trace/${traceId}`);
  }

  traces(query: Record<string, string | number> = {}): Promise<ZipkinSpan[][]> {
    const q = new URLSearchParams({ limit: "1000", lookback: String(3600 * 1000), ...Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])) });
    return this.get(`/api/v2/traces?${q}`);
  }

  services(): Promise<string[]> {
    return this.get("/api/v2/services");
  }

  async stop(): Promise<void> {
    await stopProcess(this.child);
  }
}

export interface ZipkinOptions {
  /** Port for the UI and API on 127.0.0.1 (default: a free one). */
  port?: number;
  /** A second address to listen on, e.g. a bridge where proxies in other namespaces reach it. */
  collector?: { ip: string; port: number };
  /** Extra environment for the JVM and Zipkin (e.g. a marker to find the process by). */
  env?: Record<string, string>;
}

export async function startZipkin(opts: ZipkinOptions = {}): Promise<Zipkin> {
  if (!existsSync(ZIPKIN_JAR)) throw new Error(`${ZIPKIN_JAR} missing: run 'make deps'`);
  const port = opts.port ?? (await freePort());
  const ports = [`--armeria.ports[0].port=${port}`, "--armeria.ports[0].ip=127.0.0.1", "--armeria.ports[0].protocols=http"];
  if (opts.collector) {
    const c = opts.collector;
    ports.push(`--armeria.ports[1].port=${c.port}`, `--armeria.ports[1].ip=${c.ip}`, "--armeria.ports[1].protocols=http");
  }
  const child = spawn("java", [
    "-Xms64m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:ActiveProcessorCount=1",
    "-jar", ZIPKIN_JAR,
    ...ports,
    "--logging.level.root=WARN",
  ], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...opts.env, STORAGE_TYPE: "mem", MEM_MAX_SPANS: "200000" } });
  let stderr = "";
  child.stderr?.on("data", (c) => (stderr += c));
  const zipkin = new Zipkin(port, child);
  try {
    await eventually("Zipkin healthy", async () => {
      if (child.exitCode !== null) throw new Error(`zipkin exited: ${stderr.slice(-2000)}`);
      const res = await httpRequest(`${zipkin.url}/health`, { timeoutMs: 1000 });
      return res.status === 200 ? true : undefined;
    }, 120000);
  } catch (err) {
    await zipkin.stop();
    throw err;
  }
  return zipkin;
}
