// The one harness every integration test, the demo and the benchmark use to run real Envoy:
// it renders configs from the templates in envoy/, picks free loopback ports, starts Envoy,
// waits for readiness through the admin API, and always cleans up.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import http from "node:http";
import { parse as parseYaml } from "yaml";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const ENVOY_BIN = process.env.ENVOY_BIN ?? join(ROOT, ".venv/bin/envoy");
export const PLUGIN_WASM = process.env.PLUGIN_WASM ?? join(ROOT, "build/plugin.wasm");

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * Renders a template from envoy/: each `{{NAME}}` (quoted or bare) becomes the JSON form of
 * vars.NAME, which YAML reads as the same value. Returns the parsed object.
 */
export function renderTemplate(file: string, vars: Record<string, unknown>): any {
  const text = readFileSync(join(ROOT, "envoy", file), "utf8");
  const rendered = text.replace(/"?\{\{(\w+)\}\}"?/g, (_match, name: string) => {
    if (!(name in vars)) throw new Error(`${file}: no value for {{${name}}}`);
    return JSON.stringify(vars[name]);
  });
  return parseYaml(rendered);
}

export interface WasmFilterOptions {
  /** Plugin JSON configuration (object or raw text, so tests can send malformed text). */
  config?: unknown;
  rootId?: string;
  pluginName?: string;
  vmId?: string;
  wasmPath?: string;
  failurePolicy?: "FAIL_CLOSED" | "FAIL_OPEN" | "FAIL_RELOAD";
}

export function wasmHttpFilter(opts: WasmFilterOptions = {}): any {
  return renderTemplate("wasm-http-filter.yaml", wasmVars(opts));
}

export function wasmNetworkFilter(opts: WasmFilterOptions = {}): any {
  return renderTemplate("wasm-network-filter.yaml", wasmVars(opts));
}

function wasmVars(opts: WasmFilterOptions): Record<string, unknown> {
  const config = opts.config === undefined ? {} : opts.config;
  return {
    PLUGIN_NAME: opts.pluginName ?? "mesh-telemetry",
    ROOT_ID: opts.rootId ?? "",
    VM_ID: opts.vmId ?? "mesh-telemetry",
    WASM_PATH: opts.wasmPath ?? PLUGIN_WASM,
    FAILURE_POLICY: opts.failurePolicy ?? "FAIL_OPEN",
    PLUGIN_CONFIG: typeof config === "string" ? config : JSON.stringify(config),
  };
}

export const ROUTER_FILTER = {
  name: "envoy.filters.http.router",
  typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
};

export interface ListenerOptions {
  name: string;
  port: number;
  address?: string;
  direction: "INBOUND" | "OUTBOUND" | "UNSPECIFIED";
  cluster: string;
  /** Filters before the terminal one: HTTP filters before the router, network filters before tcp_proxy. */
  filters: any[];
}

export function httpListener(opts: ListenerOptions): any {
  return renderTemplate("http-listener.yaml", {
    NAME: opts.name,
    ADDRESS: opts.address ?? "127.0.0.1",
    PORT: opts.port,
    DIRECTION: opts.direction,
    CLUSTER: opts.cluster,
    HTTP_FILTERS: [...opts.filters, ROUTER_FILTER],
  });
}

export function tcpListener(opts: ListenerOptions): any {
  const tcpProxy = {
    name: "envoy.filters.network.tcp_proxy",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
      stat_prefix: opts.name,
      cluster: opts.cluster,
    },
  };
  return renderTemplate("tcp-listener.yaml", {
    NAME: opts.name,
    ADDRESS: opts.address ?? "127.0.0.1",
    PORT: opts.port,
    DIRECTION: opts.direction,
    CLUSTER: opts.cluster,
    NETWORK_FILTERS: [...opts.filters, tcpProxy],
  });
}

export function staticCluster(name: string, port: number, address = "127.0.0.1"): any {
  return renderTemplate("cluster.yaml", { NAME: name, ADDRESS: address, PORT: port });
}

export interface NodeIdentity {
  id: string;
  cluster: string;
  metadata: Record<string, unknown>;
}

export interface EnvoyOptions {
  name: string;
  listeners: any[];
  clusters: any[];
  node?: NodeIdentity;
  concurrency?: number;
  /** Envoy's --component-log-level, e.g. "wasm:debug". */
  componentLogLevel?: string;
  /** Flush stats (and merge histograms) whenever the admin API is read, for tests. */
  flushOnAdmin?: boolean;
  /** Extra stats_tags, e.g. for custom dimensions. */
  extraStatTags?: string[];
  /** The Envoy binary, when not ENVOY_BIN (the conformance suite runs a second Envoy release). */
  envoyBin?: string;
  /** Resolve without waiting for LIVE (for configs expected to fail). */
  allowFailure?: boolean;
  /**
   * Serve the listeners through LDS from a file instead of statically, so a test can update
   * them at run time with Envoy.updateListeners (as a control plane would).
   */
  dynamicListeners?: boolean;
}

export class Envoy {
  private exited: Promise<number | null>;
  exitCode: number | null | undefined = undefined;

  constructor(
    readonly name: string,
    readonly adminPort: number,
    readonly child: ChildProcess,
    readonly logFile: string,
    readonly workDir: string,
  ) {
    this.exited = new Promise((resolveExit) => {
      child.on("exit", (code) => {
        this.exitCode = code;
        live.delete(child);
        resolveExit(code);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  logs(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, "utf8") : "";
  }

  async admin(path: string, method = "GET"): Promise<string> {
    const res = await httpRequest(`http://127.0.0.1:${this.adminPort}${path}`, { method });
    return res.body;
  }

  /** Envoy's Prometheus exposition text. */
  prometheus(): Promise<string> {
    return this.admin("/stats/prometheus");
  }

  async waitForLog(pattern: RegExp, timeoutMs = 10000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const match = this.logs().match(pattern);
      if (match) return match[0];
      await sleep(50);
    }
    throw new Error(`${this.name}: no log line matching ${pattern} within ${timeoutMs} ms\n${this.logs().slice(-3000)}`);
  }

  /**
   * Replaces the LDS resources (dynamicListeners only) by an atomic rename, which Envoy's file
   * watch picks up, and waits until Envoy has accepted or rejected the update.
   */
  async updateListeners(listeners: any[]): Promise<"accepted" | "rejected"> {
    const stat = async (name: string) => {
      const m = new RegExp(`^listener_manager\\.lds\\.${name}: (\\d+)$`, "m").exec(await this.admin("/stats?filter=listener_manager.lds"));
      return m ? Number(m[1]) : 0;
    };
    const [accepted, rejected] = [await stat("update_success"), await stat("update_rejected")];
    writeLds(this.workDir, listeners);
    return eventually("LDS update applied or rejected", async () => {
      if ((await stat("update_rejected")) > rejected) return "rejected" as const;
      if ((await stat("update_success")) > accepted) return "accepted" as const;
      return undefined;
    });
  }

  async stop(): Promise<void> {
    if (this.exitCode === undefined) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

export async function startEnvoy(opts: EnvoyOptions): Promise<Envoy> {
  const envoyBin = opts.envoyBin ?? ENVOY_BIN;
  if (!existsSync(envoyBin)) throw new Error(`Envoy not found at ${envoyBin}: run 'make deps'`);
  const adminPort = await freePort();
  const node = opts.node ?? { id: `${opts.name}~127.0.0.1~${opts.name}.default~default.svc.cluster.local`, cluster: opts.name, metadata: {} };
  const bootstrap = renderTemplate("bootstrap.yaml", {
    NODE_ID: node.id,
    NODE_CLUSTER: node.cluster,
    NODE_METADATA: node.metadata,
    ADMIN_PORT: adminPort,
    LISTENERS: opts.listeners,
    CLUSTERS: opts.clusters,
  });
  for (const tag of opts.extraStatTags ?? []) {
    bootstrap.stats_config.stats_tags.push({ tag_name: tag, regex: `(${tag}=\\.=(.*?);\\.;)` });
  }
  if (opts.flushOnAdmin ?? true) bootstrap.stats_flush_on_admin = true;

  const workDir = mkdtempSync(join(tmpdir(), `envoy-${opts.name}-`));
  if (opts.dynamicListeners) {
    writeLds(workDir, bootstrap.static_resources.listeners);
    delete bootstrap.static_resources.listeners;
    bootstrap.dynamic_resources = { lds_config: { path_config_source: { path: join(workDir, "lds.json") }, resource_api_version: "V3" } };
  }
  const configPath = join(workDir, "envoy.json");
  const logFile = join(workDir, "envoy.log");
  writeFileSync(configPath, JSON.stringify(bootstrap, null, 2));
  const args = [
    "--config-path", configPath,
    "--concurrency", String(opts.concurrency ?? 1),
    "--disable-hot-restart",
    "--log-path", logFile,
    "--log-level", "info",
    // Tests wait for log lines; Envoy's default flush interval is 10 s.
    "--file-flush-interval-msec", "250",
  ];
  if (opts.componentLogLevel) args.push("--component-log-level", opts.componentLogLevel);
  const child = spawn(envoyBin, args, { stdio: ["ignore", "ignore", "pipe"] });
  live.add(child);
  let stderr = "";
  child.stderr?.on("data", (chunk) => (stderr += chunk));
  const envoy = new Envoy(opts.name, adminPort, child, logFile, workDir);

  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    if (envoy.exitCode !== undefined) {
      if (opts.allowFailure) return envoy;
      throw new Error(`${opts.name}: Envoy exited with ${envoy.exitCode}\n${stderr}\n${envoy.logs().slice(-4000)}`);
    }
    try {
      const ready = await httpRequest(`http://127.0.0.1:${adminPort}/ready`, { timeoutMs: 1000 });
      if (ready.status === 200 && ready.body.trim() === "LIVE") return envoy;
    } catch {
      // admin not up yet
    }
    await sleep(100);
  }
  await envoy.stop();
  throw new Error(`${opts.name}: Envoy not LIVE within 30 s\n${envoy.logs().slice(-4000)}`);
}

// Writes lds.json next to it and renames it into place, the move Envoy's file watch reacts to.
function writeLds(workDir: string, listeners: any[]): void {
  const resources = listeners.map((l) => ({ "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", ...l }));
  const staging = join(workDir, `lds.${Date.now()}.json`);
  writeFileSync(staging, JSON.stringify({ version_info: String(Date.now()), resources }));
  renameSync(staging, join(workDir, "lds.json"));
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  timeoutMs?: number;
}

/** One HTTP/1.1 request without connection reuse; rejects on transport errors only. */
export function httpRequest(url: string, opts: RequestOptions = {}): Promise<HttpResponse> {
  return new Promise((resolveResponse, reject) => {
    const req = http.request(url, { method: opts.method ?? "GET", headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolveResponse({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.setTimeout(opts.timeoutMs ?? 10000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on("error", reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface Upstream {
  port: number;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/**
 * A loopback HTTP server standing in for the application. By default it answers 200 with a
 * small body; `/status/<code>` answers with that code, `/bytes/<n>` with n bytes, and
 * `/delay/<ms>` after that many milliseconds.
 */
export async function startUpstream(
  handler?: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  options: http.ServerOptions = {},
): Promise<Upstream> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer(options, (req, res) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    req.resume();
    req.on("end", () => {
      if (handler) return handler(req, res);
      defaultHandler(req, res);
    });
  });
  server.keepAliveTimeout = 60000;
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    requests,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

function defaultHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = req.url ?? "/";
  const status = /^\/status\/(\d{3})/.exec(url);
  const bytes = /^\/bytes\/(\d+)/.exec(url);
  const delay = /^\/delay\/(\d+)/.exec(url);
  const body = bytes ? "x".repeat(Number(bytes[1])) : "ok\n";
  const answer = () => {
    res.writeHead(status ? Number(status[1]) : 200, { "content-type": "text/plain" });
    res.end(body);
  };
  if (delay) setTimeout(answer, Number(delay[1]));
  else answer();
}

/** Stops a helper process (Prometheus, Zipkin, Jaeger, a registry): SIGTERM, SIGKILL after 5 s. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((ok) => child.once("exit", ok));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, ms));
}

/** Polls `check` until it returns a value that is not undefined, or fails after timeoutMs. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 10000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}
