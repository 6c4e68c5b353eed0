// A bookinfo-like service for the demo mesh: productpage, reviews or ratings, by --config.
// It knows nothing of the proxy: it listens on its port and calls plain service URLs
// (http://reviews:9080); in a pod, iptables hands both directions to the sidecar. It forwards
// the trace headers of each inbound request to the calls it makes for it, as applications in
// Istio must for traces to connect. Each answer also echoes the trace headers the service
// received (`trace`), so a caller can see them arrive at every hop.
//
//   node --import tsx tools/mesh/apps/service.ts --config '{"role":"ratings","listen":"0.0.0.0:9080",...}'
//
// Prints `listening <host>:<port>` once ready; SIGTERM closes it.
import http from "node:http";
import net from "node:net";
import { REDIS_GET_STARS, REDIS_NIL } from "./redis-wire.ts";

interface Upstream {
  url: string;
  /** Host header to send (the loopback fallback calls 127.0.0.1:<sidecar port> as "reviews:9080"). */
  host?: string;
}

interface Config {
  role: "productpage" | "reviews" | "ratings";
  version: string;
  listen: string;
  upstreams: Record<string, Upstream>;
  /** TCP services it reads from (ratings -> its database), host and port as it dials them. */
  tcpUpstreams?: Record<string, { host: string; port: number }>;
  failRate: number;
  latency: { baseMs: number; jitterMs: number; slowRate: number; slowMs: number };
  seed: number;
}

export const TRACE_HEADERS = [
  "x-request-id",
  "traceparent",
  "tracestate",
  "b3",
  "x-b3-traceid",
  "x-b3-spanid",
  "x-b3-parentspanid",
  "x-b3-sampled",
  "x-b3-flags",
  "x-ot-span-context",
];

const arg = process.argv.indexOf("--config");
if (arg < 0) throw new Error("usage: service.ts --config <json>");
const config: Config = JSON.parse(process.argv[arg + 1]);

// A small seeded generator, so a run's latencies do not depend on Math.random's state.
let seed = config.seed >>> 0 || 1;
function random(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// Failures are spread exactly: the n-th request fails when floor(n * rate) steps up, so any run
// of requests fails `rate` of them (within one request), and tests can use a tight tolerance.
let served = 0;
function shouldFail(): boolean {
  served++;
  return Math.floor(served * config.failRate) > Math.floor((served - 1) * config.failRate);
}

function delayMs(): number {
  const l = config.latency;
  let ms = l.baseMs + random() * l.jitterMs;
  if (random() < l.slowRate) ms += l.slowMs;
  return ms;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function forwardedHeaders(req: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of TRACE_HEADERS) {
    const v = req.headers[h];
    if (typeof v === "string") out[h] = v;
  }
  return out;
}

interface CallResult {
  status: number;
  body: string;
}

function call(service: string, path: string, inbound: http.IncomingMessage): Promise<CallResult> {
  const up = config.upstreams[service];
  if (!up) return Promise.resolve({ status: 0, body: `no upstream ${service}` });
  return new Promise((resolve) => {
    const headers: Record<string, string> = forwardedHeaders(inbound);
    if (up.host) headers.host = up.host;
    const req = http.request(`${up.url}${path}`, { agent, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", () => resolve({ status: 0, body }));
    });
    req.setTimeout(5000, () => req.destroy(new Error("timeout")));
    req.on("error", (e) => resolve({ status: 0, body: e.message }));
    req.end();
  });
}

// One Redis GET per connection, as ratings reads its stars from bookinfo's database: the same
// bytes out and back every time (redis-wire.ts), so the TCP metrics' byte counts are exact
// multiples of the calls.

function readStars(service: string): Promise<string> {
  const up = config.tcpUpstreams?.[service];
  if (!up) return Promise.resolve("no database");
  return new Promise((resolve) => {
    const socket = net.connect(up.port, up.host);
    let answer = "";
    const done = (result: string) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(5000, () => done("database timeout"));
    socket.on("connect", () => socket.write(REDIS_GET_STARS));
    socket.on("data", (c) => {
      answer += c.toString("latin1");
      // A whole RESP reply: close from our side once it is in, so the connection ends cleanly.
      if (answer.endsWith("\r\n") && (answer.startsWith("$-1") || answer.startsWith("-") || /^\$\d+\r\n.*\r\n$/s.test(answer))) socket.end();
    });
    socket.on("close", () => resolve(answer === REDIS_NIL ? "nil" : answer || "no answer"));
    socket.on("error", (e) => done(`database error: ${e.message}`));
  });
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://app");
  const id = url.pathname.split("/")[2] || "0";
  await new Promise((ok) => setTimeout(ok, delayMs()));
  if (config.role === "productpage" && url.pathname.startsWith("/productpage")) {
    const reviews = await call("reviews", `/reviews/${id}`, req);
    return reply(res, 200, {
      product: { id, title: "The Comedy of Errors" },
      trace: forwardedHeaders(req),
      reviews: reviews.status === 200 ? JSON.parse(reviews.body) : { error: `reviews unavailable (${reviews.status})` },
    });
  }
  if (config.role === "reviews" && url.pathname.startsWith("/reviews/")) {
    const body: Record<string, unknown> = {
      id,
      version: config.version,
      trace: forwardedHeaders(req),
      reviews: [{ reviewer: "Reviewer1", text: "An extremely entertaining play by Shakespeare." }],
    };
    if (config.upstreams.ratings) {
      const ratings = await call("ratings", `/ratings/${id}`, req);
      // Degrade gracefully, as bookinfo's reviews do: no stars, but the page still works.
      const answer = ratings.status === 200 ? JSON.parse(ratings.body) : undefined;
      body.rating = answer ? answer.stars : `ratings unavailable (${ratings.status})`;
      if (answer) body.ratingsTrace = answer.trace;
    }
    return reply(res, 200, body);
  }
  if (config.role === "ratings" && url.pathname.startsWith("/ratings/")) {
    // Every request reads the database first, so TCP connections = ratings requests.
    const stored = await readStars("redis");
    if (shouldFail()) return reply(res, 500, { error: "ratings backend failure (injected)" });
    return reply(res, 200, { id, stars: 4, database: stored, trace: forwardedHeaders(req) });
  }
  reply(res, 404, { error: `no route ${url.pathname}` });
}

const server = http.createServer((req, res) => {
  req.resume();
  handle(req, res).catch((e) => reply(res, 500, { error: String(e) }));
});
server.keepAliveTimeout = 60_000;
const [host, port] = [config.listen.slice(0, config.listen.lastIndexOf(":")), Number(config.listen.slice(config.listen.lastIndexOf(":") + 1))];
server.listen(port, host, () => console.log(`listening ${host}:${port}`));
const stop = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
