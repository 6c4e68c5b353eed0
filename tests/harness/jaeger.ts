// A real Jaeger v2 (cmd/jaeger of github.com/jaegertracing/jaeger, built by `make deps` from
// the Go module proxy) with an OTLP/HTTP receiver, in-memory storage and the query API, all on
// loopback ports, and a client for the query API's traces. Its UI is Jaeger's placeholder page:
// the UI assets are not part of the Go module.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually, freePort, httpRequest, ROOT, stopProcess } from "./envoy.ts";

export const JAEGER_VERSION = "1.75.0";
export const JAEGER_BIN = join(ROOT, ".cache", `jaeger-${JAEGER_VERSION}`, "jaeger");

/** A span as Jaeger's query API (/api/traces/<id>) returns it. */
export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: Array<{ refType: "CHILD_OF" | "FOLLOWS_FROM"; traceID: string; spanID: string }>;
  /** Microseconds since the epoch, and microseconds. */
  startTime: number;
  duration: number;
  tags: Array<{ key: string; type: string; value: string | number | boolean }>;
  processID: string;
  warnings: string[] | null;
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: Array<{ key: string; type: string; value: unknown }> }>;
}

export class Jaeger {
  constructor(
    /** OTLP/HTTP receiver (POST /v1/traces). */
    readonly otlpPort: number,
    /** Query API and UI. */
    readonly queryPort: number,
    private child: ChildProcess,
    private dir: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.queryPort}`;
  }

  private async get(path: string): Promise<any> {
    const res = await httpRequest(`${this.url}${path}`);
    if (res.status !== 200) throw new Error(`jaeger ${path}: ${res.status} ${res.body}`);
    return JSON.parse(res.body);
  }

  /** One trace by its 32-hex id; undefined while Jaeger has none. */
  async trace(traceId: string): Promise<JaegerTrace | undefined> {
    const res = await httpRequest(`${this.url}/api/traces/${traceId}`);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`jaeger /api/traces/${traceId}: ${res.status} ${res.body}`);
    return (JSON.parse(res.body).data as JaegerTrace[])[0];
  }

  /** Traces of a service, newest first; `tags` matches span attributes exactly. */
  async traces(service: string, tags: Record<string, string> = {}): Promise<JaegerTrace[]> {
    const q = new URLSearchParams({ service, limit: "100", lookback: "1h" });
    if (Object.keys(tags).length > 0) q.set("tags", JSON.stringify(tags));
    return (await this.get(`/api/traces?${q}`)).data ?? [];
  }

  async services(): Promise<string[]> {
    return (await this.get("/api/services")).data ?? [];
  }

  async stop(): Promise<void> {
    await stopProcess(this.child);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface JaegerOptions {
  /** Query API and UI port on 127.0.0.1 (default: a free one). */
  queryPort?: number;
  /** OTLP/HTTP receiver address (default: a free port on 127.0.0.1). */
  otlp?: { ip: string; port: number };
}

// Only the pieces the plugin needs: OTLP/HTTP in, memory storage, the query extension; no
// gRPC receiver, no self-telemetry endpoint, nothing on a fixed or non-loopback port.
function config(otlp: string, query: number, queryGrpc: number): string {
  return `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:${query}
    grpc:
      endpoint: 127.0.0.1:${queryGrpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: ${otlp}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`;
}

export async function startJaeger(opts: JaegerOptions = {}): Promise<Jaeger> {
  if (!existsSync(JAEGER_BIN)) throw new Error(`${JAEGER_BIN} missing: run 'make deps'`);
  const otlp = opts.otlp ?? { ip: "127.0.0.1", port: await freePort() };
  const queryPort = opts.queryPort ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "jaeger-"));
  const file = join(dir, "config.yaml");
  writeFileSync(file, config(`${otlp.ip}:${otlp.port}`, queryPort, await freePort()));
  const child = spawn(JAEGER_BIN, ["--config", file], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c) => (stderr = (stderr + c).slice(-20000)));
  const jaeger = new Jaeger(otlp.port, queryPort, child, dir);
  try {
    await eventually("Jaeger answering", async () => {
      if (child.exitCode !== null) throw new Error(`jaeger exited: ${stderr.slice(-2000)}`);
      const res = await httpRequest(`${jaeger.url}/api/services`, { timeoutMs: 1000 }).catch(() => undefined);
      const receiver = await httpRequest(`http://${otlp.ip}:${otlp.port}/v1/traces`, { timeoutMs: 1000 }).catch(() => undefined);
      return res?.status === 200 && receiver !== undefined ? true : undefined;
    }, 60000);
  } catch (err) {
    await jaeger.stop();
    throw err;
  }
  return jaeger;
}
