// The load generator: a fixed request rate for a fixed time (open loop, a bounded number in
// flight) against the ingress gateway, from the host. Never unbounded, never to an address
// the mesh did not create.
import http from "node:http";
import net from "node:net";

export interface TrafficOptions {
  url: string;
  rps: number;
  durationMs: number;
  /** Most requests in flight; beyond that, ticks are skipped (and counted). */
  maxInFlight?: number;
  onProgress?: (t: TrafficResult, elapsedMs: number) => void;
  progressEveryMs?: number;
  /** Stop early when this resolves (Ctrl-C). */
  abort?: AbortSignal;
}

export interface TrafficResult {
  sent: number;
  byStatus: Record<string, number>;
  transportErrors: number;
  skipped: number;
  startedAt: number;
  endedAt: number;
}

export async function driveTraffic(o: TrafficOptions): Promise<TrafficResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.maxInFlight ?? 32 });
  const result: TrafficResult = { sent: 0, byStatus: {}, transportErrors: 0, skipped: 0, startedAt: Date.now(), endedAt: 0 };
  const total = Math.round((o.rps * o.durationMs) / 1000);
  const interval = 1000 / o.rps;
  let inFlight = 0;
  let lastProgress = result.startedAt;
  const pending = new Set<Promise<void>>();
  const one = (i: number) => new Promise<void>((done) => {
    inFlight++;
    result.sent++;
    const req = http.get(`${o.url.replace(/\{i\}/g, String(i))}`, { agent }, (res) => {
      res.resume();
      res.on("end", () => {
        const k = String(res.statusCode);
        result.byStatus[k] = (result.byStatus[k] ?? 0) + 1;
        inFlight--;
        done();
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
    req.on("error", () => {
      result.transportErrors++;
      inFlight--;
      done();
    });
  });
  for (let i = 0; i < total && !o.abort?.aborted; i++) {
    const due = result.startedAt + i * interval;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((ok) => setTimeout(ok, wait));
    if (inFlight >= (o.maxInFlight ?? 32)) {
      result.skipped++;
      continue;
    }
    const p = one(i);
    pending.add(p);
    p.then(() => pending.delete(p));
    if (o.onProgress && Date.now() - lastProgress >= (o.progressEveryMs ?? 5000)) {
      lastProgress = Date.now();
      o.onProgress(result, lastProgress - result.startedAt);
    }
  }
  await Promise.all(pending);
  agent.destroy();
  result.endedAt = Date.now();
  return result;
}

/**
 * A caller outside the mesh, as PERMISSIVE mode lets in: plain HTTP straight to a pod (no
 * sidecar of its own, so no mTLS and no peer metadata) every `httpEveryMs`, and a plain TCP
 * exchange with a database pod every `tcpEveryMs`, until `durationMs` or `abort`. It keeps the
 * dashboards' non-mTLS panels (connection_security_policy!="mutual_tls") in data, as a
 * half-migrated mesh would.
 */
export async function driveOutsideCaller(o: {
  httpUrl: string; tcp: { host: string; port: number; payload: string }; durationMs: number; httpEveryMs?: number; tcpEveryMs?: number; abort?: AbortSignal;
}): Promise<{ http: number; httpOk: number; tcp: number; tcpOk: number }> {
  const result = { http: 0, httpOk: 0, tcp: 0, tcpOk: 0 };
  const end = Date.now() + o.durationMs;
  const loop = async (everyMs: number, one: (i: number) => Promise<boolean>, count: "http" | "tcp") => {
    for (let i = 0; Date.now() < end && !o.abort?.aborted; i++) {
      const started = Date.now();
      result[count]++;
      if (await one(i)) result[count === "http" ? "httpOk" : "tcpOk"]++;
      await new Promise((ok) => setTimeout(ok, Math.max(0, everyMs - (Date.now() - started))));
    }
  };
  const httpOne = (i: number) => new Promise<boolean>((ok) => {
    const req = http.get(o.httpUrl.replace(/\{i\}/g, String(i)), (res) => {
      res.resume();
      res.on("end", () => ok(res.statusCode === 200));
    });
    req.setTimeout(5000, () => req.destroy(new Error("timeout")));
    req.on("error", () => ok(false));
  });
  const tcpOne = () => new Promise<boolean>((ok) => {
    const s = net.connect(o.tcp.port, o.tcp.host, () => s.write(o.tcp.payload));
    let got = "";
    s.setTimeout(5000, () => s.destroy());
    s.on("data", (c) => {
      got += c;
      if (got.endsWith("\r\n")) s.end();
    });
    s.on("close", () => ok(got.length > 0));
    s.on("error", () => ok(false));
  });
  await Promise.all([loop(o.httpEveryMs ?? 500, httpOne, "http"), loop(o.tcpEveryMs ?? 1000, tcpOne, "tcp")]);
  return result;
}
