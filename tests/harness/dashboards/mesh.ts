// A small loopback mesh for Istio's dashboards: five Istio-shaped sidecars (the harness's
// sidecars.ts: real Envoy with the plugin), a real Prometheus scraping them every second, and steady, bounded traffic of
// every kind the dashboards chart:
//
//   productpage-v1.bookinfo --mTLS-->  reviews  (HTTP/1.1)  reviews-v2.bookinfo
//   sleep.default          --plain-->  ratings  (gRPC, h2)  ratings-v1.bookinfo
//                                      mongodb  (TCP)       mongodb-v1.db
//
// Both clients call all three services; the servers accept mTLS and plaintext on one port, as
// Istio's PERMISSIVE mode does (tls_inspector picks the filter chain), so the dashboards'
// "(🔐mTLS)" queries and their plaintext twins both have data. Certificates carry SPIFFE
// URIs, issued at start by the harness's mesh CA (ca.ts).
//
// The traffic is open-loop (requests start on a fixed schedule, whatever their latency) with a
// fixed pattern per client, so its rates, error shares and latency/size histogram buckets are
// known in advance: `flows` describes it for model.ts.
import http2 from "node:http2";
import net from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { httpRequest, sleep, startUpstream, type Envoy, type Upstream } from "../envoy.ts";
import { serviceHost, startSidecar, type Protocol, type ServiceRef, type Sidecar, type Workload } from "../sidecars.ts";
import { createMeshCa, issueWorkloadCert, type WorkloadCert } from "../ca.ts";
import { startPrometheus, type PrometheusServer } from "../prometheus-server.ts";
import { parsePrometheus, select } from "../prometheus.ts";
import { type Flow, type RequestClass } from "./model.ts";

export const WORKLOADS = {
  productpage: { workload: "productpage-v1", namespace: "bookinfo", app: "productpage", version: "v1" },
  sleep: { workload: "sleep", namespace: "default", app: "sleep", version: "v1" },
  reviews: { workload: "reviews-v2", namespace: "bookinfo", app: "reviews", version: "v2" },
  ratings: { workload: "ratings-v1", namespace: "bookinfo", app: "ratings", version: "v1" },
  mongodb: { workload: "mongodb-v1", namespace: "db", app: "mongodb", version: "v1" },
} satisfies Record<string, Workload>;

export const SERVICES = {
  reviews: { name: "reviews", namespace: "bookinfo" },
  ratings: { name: "ratings", namespace: "bookinfo" },
  mongodb: { name: "mongodb", namespace: "db" },
} satisfies Record<string, ServiceRef>;

/** The service each protocol's traffic goes to. */
export const SERVICE_OF = { http: SERVICES.reviews, grpc: SERVICES.ratings, tcp: SERVICES.mongodb } as const;

/** How often the plugin reports open TCP connections. */
export const TCP_REPORTING = "100ms";

// ---- The traffic plan: per client, a fixed pattern repeated on a fixed schedule ----

const REQUEST_BODY = 3000;
const RESPONSE_BODY = 6000;
/** Request and response sizes include headers (and the metadata exchange): body plus a few hundred bytes. */
const HEADERS_ESTIMATE = 400;

interface HttpStep {
  status: number;
  delayMs: number;
}
/** HTTP: 10 requests/s per client; per 10: five of 30 ms, three of 150 ms, a 404 and a 503. */
const HTTP_PATTERN: HttpStep[] = [
  { status: 200, delayMs: 30 }, { status: 200, delayMs: 150 }, { status: 200, delayMs: 30 }, { status: 404, delayMs: 0 },
  { status: 200, delayMs: 30 }, { status: 200, delayMs: 150 }, { status: 200, delayMs: 30 }, { status: 503, delayMs: 0 },
  { status: 200, delayMs: 30 }, { status: 200, delayMs: 150 },
];
const HTTP_PER_SECOND = 10;
/** gRPC: 5 calls/s per client, 60 ms each; one in five ends with grpc-status 5 (NOT_FOUND). */
const GRPC_PATTERN = ["0", "0", "0", "0", "5"];
const GRPC_PER_SECOND = 5;
const GRPC_DELAY_MS = 60;
/** TCP: one long-lived connection per client writing a chunk every 100 ms; the server answers twice as much. */
const TCP_CHUNK = { productpage: 1000, sleep: 500 } as const;
const TCP_WRITES_PER_SECOND = 10;

export interface Client {
  key: "productpage" | "sleep";
  workload: Workload;
  mtls: boolean;
}
export const CLIENTS: Client[] = [
  { key: "productpage", workload: WORKLOADS.productpage, mtls: true },
  { key: "sleep", workload: WORKLOADS.sleep, mtls: false },
];

/** The steady traffic as the model sees it. */
export function plannedFlows(): Flow[] {
  const flows: Flow[] = [];
  for (const c of CLIENTS) {
    const http: RequestClass[] = [];
    for (const step of HTTP_PATTERN) {
      const ok = step.status === 200;
      http.push({
        perSecond: HTTP_PER_SECOND / HTTP_PATTERN.length,
        code: String(step.status),
        durationMs: Math.max(step.delayMs, 2),
        requestBytes: REQUEST_BODY + HEADERS_ESTIMATE,
        responseBytes: ok ? RESPONSE_BODY + HEADERS_ESTIMATE / 2 : 150,
      });
    }
    flows.push({ protocol: "http", source: c.workload, destination: WORKLOADS.reviews, service: SERVICES.reviews, mtls: c.mtls, requests: http });
    flows.push({
      protocol: "grpc", source: c.workload, destination: WORKLOADS.ratings, service: SERVICES.ratings, mtls: c.mtls,
      requests: GRPC_PATTERN.map((status) => ({
        perSecond: GRPC_PER_SECOND / GRPC_PATTERN.length, code: "200", grpcStatus: status, durationMs: GRPC_DELAY_MS,
        requestBytes: REQUEST_BODY + 5 + HEADERS_ESTIMATE, responseBytes: RESPONSE_BODY + 5 + HEADERS_ESTIMATE / 2,
      })),
    });
    const chunk = TCP_CHUNK[c.key];
    flows.push({
      protocol: "tcp", source: c.workload, destination: WORKLOADS.mongodb, service: SERVICES.mongodb, mtls: c.mtls,
      tcp: { receivedPerSecond: chunk * TCP_WRITES_PER_SECOND, sentPerSecond: 2 * chunk * TCP_WRITES_PER_SECOND },
    });
  }
  return flows;
}

// ---- Certificates and sidecars ----

/** The mesh CA and each workload's SPIFFE certificate (service account: the app's name). */
function issueCerts(dir: string, workloads: Workload[]): Record<string, WorkloadCert> {
  const ca = createMeshCa(join(dir, "ca"));
  return Object.fromEntries(workloads.map((w) => [w.workload, issueWorkloadCert(ca, { namespace: w.namespace, serviceAccount: w.app, dir: join(dir, w.workload) })]));
}

const httpPlugin = {};
const tcpPlugin = { pluginName: "mesh-telemetry-tcp", vmId: "mesh-telemetry-tcp", config: { tcp_reporting_duration: TCP_REPORTING } };

/** A server: inbound PERMISSIVE (mTLS and plaintext on one port), the plugin for its protocol. */
function startServerSidecar(w: Workload, protocol: Protocol, appPort: number, certs: Record<string, WorkloadCert>): Promise<Sidecar> {
  return startSidecar({ workload: w, appPort, appProtocol: protocol, plugin: httpPlugin, networkPlugin: tcpPlugin, certs: certs[w.workload] });
}

/** A client: an outbound listener per protocol's service, originating mTLS when the client does. */
function startClientSidecar(client: Client, servers: Record<Protocol, Sidecar>, certs: Record<string, WorkloadCert>): Promise<Sidecar> {
  const destinations: Record<Protocol, Workload> = { http: WORKLOADS.reviews, grpc: WORKLOADS.ratings, tcp: WORKLOADS.mongodb };
  return startSidecar({
    workload: client.workload,
    outbound: (["http", "grpc", "tcp"] as Protocol[]).map((protocol) => ({
      service: SERVICE_OF[protocol],
      endpoints: [{ port: servers[protocol].inboundPort, workload: destinations[protocol] }],
      protocol,
      mtls: client.mtls,
    })),
    plugin: httpPlugin,
    networkPlugin: tcpPlugin,
    certs: certs[client.workload.workload],
  });
}

// ---- Applications ----

/** HTTP app: `?status=&delay=&bytes=` (after reading the request body). */
function httpApp(): Promise<Upstream> {
  return startUpstream((req, res) => {
    const q = new URL(req.url ?? "/", "http://app").searchParams;
    const status = Number(q.get("status") ?? 200);
    const body = status === 200 ? "r".repeat(Number(q.get("bytes") ?? 3)) : `error ${status}\n`;
    setTimeout(() => {
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(body);
    }, Number(q.get("delay") ?? 0));
  });
}

/** gRPC app over h2c: answers one message of `x-response-bytes` after `x-delay-ms`, with `x-grpc-status`. */
async function grpcApp(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    stream.on("data", () => {});
    stream.on("error", () => {});
    stream.on("end", () => {
      setTimeout(() => {
        if (stream.destroyed) return;
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": String(headers["x-grpc-status"] ?? "0") }));
        stream.end(grpcFrame(Number(headers["x-response-bytes"] ?? 0)));
      }, Number(headers["x-delay-ms"] ?? 0));
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = (server.address() as net.AddressInfo).port;
  return { port, close: () => new Promise<void>((ok) => server.close(() => ok())) };
}

function grpcFrame(size: number): Buffer {
  const frame = Buffer.alloc(5 + size, 0x61);
  frame[0] = 0;
  frame.writeUInt32BE(size, 1);
  return frame;
}

/** TCP app: answers every chunk with twice as many bytes. */
async function tcpApp(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("data", (chunk) => socket.write(Buffer.concat([chunk, chunk])));
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () => new Promise<void>((ok) => {
      for (const s of sockets) s.destroy();
      server.close(() => ok());
    }),
  };
}

// ---- Clients ----

function httpCall(port: number, step: HttpStep): Promise<number> {
  const path = `/reviews/1?status=${step.status}&delay=${step.delayMs}&bytes=${RESPONSE_BODY}`;
  return httpRequest(`http://127.0.0.1:${port}${path}`, { method: "POST", body: Buffer.alloc(REQUEST_BODY, 0x71), headers: { "content-type": "application/json" } })
    .then((r) => r.status);
}

function grpcCall(session: http2.ClientHttp2Session, status: string): Promise<string> {
  return new Promise((ok, fail) => {
    const req = session.request({
      ":method": "POST", ":path": "/ratings.Ratings/GetRating", "content-type": "application/grpc", te: "trailers",
      "x-grpc-status": status, "x-delay-ms": String(GRPC_DELAY_MS), "x-response-bytes": String(RESPONSE_BODY),
    });
    let grpcStatus = "";
    req.on("trailers", (t) => (grpcStatus = String(t["grpc-status"] ?? "")));
    req.on("error", fail);
    req.on("data", () => {});
    req.on("end", () => ok(grpcStatus));
    req.setTimeout(10000, () => req.close(http2.constants.NGHTTP2_CANCEL));
    req.end(grpcFrame(REQUEST_BODY));
  });
}

class TcpConversation {
  received = 0;
  written = 0;
  closed: string | undefined;
  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d) => (this.received += d.length));
    socket.on("error", (e) => (this.closed ??= e.message));
    socket.on("close", () => (this.closed ??= "closed by the proxy"));
  }
  static async open(port: number): Promise<TcpConversation> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((ok, fail) => socket.once("connect", ok).once("error", fail));
    return new TcpConversation(socket);
  }
  write(size: number): void {
    if (this.closed) return;
    this.socket.write(Buffer.alloc(size, 0x6d));
    this.written += size;
  }
  /** Resolves once every byte written has come back doubled (or the connection is gone). */
  async echoed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !this.closed) {
      if (this.received >= 2 * this.written) return true;
      await sleep(20);
    }
    return this.received >= 2 * this.written;
  }
  async close(): Promise<void> {
    this.socket.end();
    await new Promise((ok) => {
      this.socket.once("close", ok);
      setTimeout(ok, 2000);
    });
  }
}

// ---- The mesh ----

export interface TrafficWindow {
  /** Epoch seconds: priming started, steady traffic started and ended. */
  primedAt: number;
  start: number;
  end: number;
}

export interface Sent {
  http: Record<string, number>;
  grpc: Record<string, number>;
  tcpBytes: Record<string, number>;
  failures: string[];
  /** Latencies the clients saw during the steady traffic, ms, by `protocol/client`. */
  latencies: Record<string, number[]>;
  /** How long after the TCP echo every TCP connection had been reported on both sides. */
  tcpFirstReportMs?: number;
}

/**
 * The flows with every request taking as long as the slowest one its client saw: a ceiling
 * for the duration percentiles, since a sidecar's measurement lies within its client's. On a
 * machine shared with other work, scheduling stalls add tail latency no plan can predict.
 */
export function ceilingFlows(flows: Flow[], sent: Sent): Flow[] {
  return flows.map((f) => {
    const seen = sent.latencies[`${f.protocol}/${CLIENTS.find((c) => c.workload === f.source)!.key}`] ?? [];
    const slowest = Math.max(0, ...seen);
    return { ...f, requests: f.requests?.map((r) => ({ ...r, durationMs: Math.max(r.durationMs, slowest) })) };
  });
}

export interface DashboardMesh {
  prometheus: PrometheusServer;
  /**
   * Set by drive() when a TCP connection's series are missing or their labels came out wrong
   * after priming (then no steady traffic is driven): the plugin resolves a connection's labels at its first report, and a report tick
   * that falls before the upstream connection is up gives destination_workload="unknown" (see
   * docs/dashboards.md). Its series never go away, so the caller starts a fresh mesh.
   */
  tcpLabelRace?: string;
  envoys: Record<string, Envoy>;
  /** The model of the steady traffic. */
  flows: Flow[];
  sent: Sent;
  /** Runs the priming round, waits for Prometheus, then `seconds` of steady traffic. */
  drive(seconds: number): Promise<TrafficWindow>;
  stop(): Promise<void>;
}

export async function startDashboardMesh(): Promise<DashboardMesh> {
  // The harness picks free ports before Envoy binds them; on a busy machine another process
  // can take one in between. Such a start is retried (twice at most).
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce();
    } catch (err) {
      if (attempt >= 3 || !/Address already in use/.test((err as Error).message)) throw err;
    }
  }
}

async function startOnce(): Promise<DashboardMesh> {
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
  };
  try {
    const certDir = mkdtempSync(join(tmpdir(), "mesh-certs-"));
    stops.push(async () => rmSync(certDir, { recursive: true, force: true }));
    const certs = issueCerts(certDir, Object.values(WORKLOADS));
    const [web, grpc, tcp] = await Promise.all([httpApp(), grpcApp(), tcpApp()]);
    stops.push(() => web.close(), () => grpc.close(), () => tcp.close());

    // Started side by side; each registers its stop as soon as it is up, so a failed start
    // leaves nothing running. allSettled: wait for every start before cleaning up.
    const up = async <T extends { envoy: Envoy }>(p: Promise<T>): Promise<T> => {
      const s = await p;
      stops.push(() => s.envoy.stop());
      return s;
    };
    const all = async <T>(ps: Promise<T>[]): Promise<T[]> => {
      const settled = await Promise.allSettled(ps);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
      return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
    };
    const serverList = await all([
      up(startServerSidecar(WORKLOADS.reviews, "http", web.port, certs)),
      up(startServerSidecar(WORKLOADS.ratings, "grpc", grpc.port, certs)),
      up(startServerSidecar(WORKLOADS.mongodb, "tcp", tcp.port, certs)),
    ]);
    const servers: Record<Protocol, Sidecar> = { http: serverList[0], grpc: serverList[1], tcp: serverList[2] };
    const clientList = await all(CLIENTS.map((c) => up(startClientSidecar(c, servers, certs))));

    const envoys: Record<string, Envoy> = {
      [WORKLOADS.reviews.workload]: servers.http.envoy,
      [WORKLOADS.ratings.workload]: servers.grpc.envoy,
      [WORKLOADS.mongodb.workload]: servers.tcp.envoy,
      [WORKLOADS.productpage.workload]: clientList[0].envoy,
      [WORKLOADS.sleep.workload]: clientList[1].envoy,
    };
    const prometheus = await startPrometheus(Object.entries(envoys).map(([pod, e]) => ({ address: `127.0.0.1:${e.adminPort}`, labels: { pod } })));
    stops.push(() => prometheus.stop());

    const sent: Sent = { http: {}, grpc: {}, tcpBytes: {}, failures: [], latencies: {} };
    const count = (table: Record<string, number>, key: string, n = 1) => (table[key] = (table[key] ?? 0) + n);

    // Every TCP series must carry the labels the model expects (see tcpLabelRace).
    const tcpLabelProblems = async (): Promise<string | undefined> => {
      const bad: string[] = [];
      const fqdn = serviceHost(SERVICES.mongodb);
      for (const [name, envoy] of Object.entries(envoys)) {
        const opened = select(parsePrometheus(await envoy.prometheus()), "istio_tcp_connections_opened_total");
        // Each connection reported on both sides: one series per client, and per policy on the server.
        const want = name === WORKLOADS.mongodb.workload ? ["mutual_tls", "none"] : CLIENTS.some((c) => c.workload.workload === name) ? ["unknown"] : [];
        for (const policy of want) {
          if (!opened.some((s) => s.labels.connection_security_policy === policy)) bad.push(`${name}: no TCP series with connection_security_policy=${policy} yet`);
        }
        for (const s of opened) {
          const l = s.labels;
          const ok = l.destination_workload === WORKLOADS.mongodb.workload && l.destination_workload_namespace === WORKLOADS.mongodb.namespace &&
            l.destination_service === fqdn &&
            (l.reporter === "source" ? l.source_workload === name : ["mutual_tls", "none"].includes(l.connection_security_policy));
          if (!ok) bad.push(`${name}: ${JSON.stringify(l)}`);
        }
      }
      return bad.length ? bad.join("; ") : undefined;
    };

    const drive = async (seconds: number): Promise<TrafficWindow> => {
      const sessions = CLIENTS.map((_, i) => http2.connect(`http://127.0.0.1:${clientList[i].outboundPorts[SERVICE_OF.grpc.name]}`));
      for (const s of sessions) s.on("error", (e) => sent.failures.push(`h2 session: ${e.message}`));
      const conversations: TcpConversation[] = [];
      const inflight: Promise<unknown>[] = [];
      let steady = false;
      const track = <T>(what: string, latencyKey: string, p: Promise<T>, check: (v: T) => boolean) => {
        const started = performance.now();
        const timed = steady;
        inflight.push(p.then((v) => {
          if (!check(v)) sent.failures.push(`${what}: got ${v}`);
          if (timed) (sent.latencies[latencyKey] ??= []).push(performance.now() - started);
        }, (e) => sent.failures.push(`${what}: ${e.message}`)));
      };
      const fireHttp = (i: number, step: HttpStep) => {
        count(sent.http, `${CLIENTS[i].key}/${step.status}`);
        track(`HTTP ${CLIENTS[i].key} ${step.status}`, `http/${CLIENTS[i].key}`, httpCall(clientList[i].outboundPorts[SERVICE_OF.http.name], step), (s) => s === step.status);
      };
      const fireGrpc = (i: number, status: string) => {
        count(sent.grpc, `${CLIENTS[i].key}/${status}`);
        track(`gRPC ${CLIENTS[i].key} ${status}`, `grpc/${CLIENTS[i].key}`, grpcCall(sessions[i], status), (s) => s === status);
      };
      const writeTcp = (i: number) => {
        conversations[i].write(TCP_CHUNK[CLIENTS[i].key]);
        count(sent.tcpBytes, CLIENTS[i].key, TCP_CHUNK[CLIENTS[i].key]);
      };
      try {
        // Priming: one request of every kind, so each series exists before Prometheus's first
        // scrape of the steady traffic (rate() cannot see what a series held before its first sample).
        const primedAt = Date.now() / 1000;
        for (let i = 0; i < CLIENTS.length; i++) {
          for (const step of HTTP_PATTERN.filter((s, k) => HTTP_PATTERN.findIndex((o) => o.status === s.status && o.delayMs === s.delayMs) === k)) fireHttp(i, step);
          for (const status of new Set(GRPC_PATTERN)) fireGrpc(i, status);
          conversations.push(await TcpConversation.open(clientList[i].outboundPorts[SERVICE_OF.tcp.name]));
          writeTcp(i);
        }
        await Promise.all(inflight.splice(0));
        for (const [i, c] of conversations.entries()) {
          if (!(await c.echoed())) sent.failures.push(`TCP ${CLIENTS[i].key}: ${c.received} of ${2 * c.written} bytes back (${c.closed ?? "open"})`);
        }
        // Wait for every TCP connection's first report (normally one 100 ms period; seen to take
        // longer on the server side of mTLS connections), then check its labels.
        const reportsFrom = Date.now();
        let race = await tcpLabelProblems();
        while (race && !/"reporter"/.test(race) && Date.now() - reportsFrom < 3000) {
          await sleep(100);
          race = await tcpLabelProblems();
        }
        sent.tcpFirstReportMs = Date.now() - reportsFrom;
        if (race) {
          result.tcpLabelRace = race;
          return { primedAt, start: NaN, end: NaN };
        }
        await prometheus.waitForScrapes(2);

        // Steady, open-loop traffic on fixed schedules.
        steady = true;
        const t0 = Date.now() + 50;
        const end = t0 + seconds * 1000;
        const schedule = async (perSecond: number, fire: (n: number) => void) => {
          for (let n = 0; ; n++) {
            const at = t0 + (n * 1000) / perSecond;
            if (at >= end) return;
            const wait = at - Date.now();
            if (wait > 0) await sleep(wait);
            fire(n);
          }
        };
        await Promise.all(CLIENTS.flatMap((_, i) => [
          schedule(HTTP_PER_SECOND, (n) => fireHttp(i, HTTP_PATTERN[n % HTTP_PATTERN.length])),
          schedule(GRPC_PER_SECOND, (n) => fireGrpc(i, GRPC_PATTERN[n % GRPC_PATTERN.length])),
          schedule(TCP_WRITES_PER_SECOND, () => writeTcp(i)),
        ]));
        await Promise.all(inflight.splice(0));
        for (const [i, c] of conversations.entries()) {
          if (!(await c.echoed())) sent.failures.push(`TCP ${CLIENTS[i].key}: ${c.received} of ${2 * c.written} bytes back (${c.closed ?? "open"})`);
        }
        return { primedAt, start: t0 / 1000, end: end / 1000 };
      } finally {
        for (const s of sessions) s.close();
        await Promise.all(conversations.map((c) => c.close()));
      }
    };
    const result: DashboardMesh = { prometheus, envoys, flows: plannedFlows(), sent, drive, stop };
    return result;
  } catch (err) {
    await stop();
    throw err;
  }
}
