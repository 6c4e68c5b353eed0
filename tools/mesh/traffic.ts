// The load generator: a fixed request rate for a fixed time (open loop, a bounded number in
// flight) against the ingress gateway, from the host. Never unbounded, never to an address
// the mesh did not create.
import http from "node:http";

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
