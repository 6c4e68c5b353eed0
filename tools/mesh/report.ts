// What the demo shows: per-edge request rate, error rate and latency percentiles computed by
// PromQL through Prometheus's HTTP API (the queries Istio's dashboards and Kiali run), and the
// slowest trace Zipkin holds as an indented tree.
import { httpRequest } from "../harness/envoy.ts";
import type { Zipkin, ZipkinSpan } from "../harness/zipkin.ts";

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

/** An instant query at `time` (unix seconds; default now). */
export async function promQuery(baseUrl: string, promql: string, time?: number): Promise<PromSample[]> {
  const params = new URLSearchParams({ query: promql });
  if (time !== undefined) params.set("time", time.toFixed(3));
  const res = await httpRequest(`${baseUrl}/api/v1/query?${params}`);
  const body = JSON.parse(res.body);
  if (body.status !== "success") throw new Error(`${promql}: ${body.errorType}: ${body.error}`);
  if (body.data.resultType === "scalar") return [{ metric: {}, value: Number(body.data.result[1]) }];
  return body.data.result.map((r: any) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

export interface EdgeStats {
  source: string;
  destination: string;
  /** requests/s, errors/s and latency from the client side (reporter="source"), as Kiali's graph. */
  rps: number;
  errorRate: number;
  p50: number;
  p99: number;
  /** Cumulative request counts each reporter has for the edge (both sidecars saw it). */
  sourceCount: number;
  destinationCount: number;
}

const EDGE = "source_workload, destination_workload";

/** The PromQL behind each column, for a window of `w` (e.g. "30s"). */
export function edgeQueries(w: string): Record<string, string> {
  const requests = `istio_requests_total{reporter="source"}`;
  const buckets = `istio_request_duration_milliseconds_bucket{reporter="source"}`;
  return {
    rps: `sum by (${EDGE}) (rate(${requests}[${w}]))`,
    errors: `sum by (${EDGE}) (rate(istio_requests_total{reporter="source",response_code=~"5.."}[${w}])) / sum by (${EDGE}) (rate(${requests}[${w}]))`,
    p50: `histogram_quantile(0.50, sum by (${EDGE}, le) (rate(${buckets}[${w}])))`,
    p99: `histogram_quantile(0.99, sum by (${EDGE}, le) (rate(${buckets}[${w}])))`,
    counts: `sum by (${EDGE}, reporter) (istio_requests_total)`,
  };
}

/**
 * Edge statistics over the `windowS` seconds before `at` (unix seconds): the traffic run's
 * window, evaluated once Prometheus has scraped its end.
 */
export async function edgeStats(prometheusUrl: string, windowS: number, at?: number): Promise<EdgeStats[]> {
  const q = edgeQueries(`${Math.max(1, Math.round(windowS))}s`);
  const [rps, errors, p50, p99] = await Promise.all([q.rps, q.errors, q.p50, q.p99].map((query) => promQuery(prometheusUrl, query, at)));
  // Totals as of the latest scrape (not `at`, which may fall between the last two scrapes).
  const counts = await promQuery(prometheusUrl, q.counts);
  const key = (m: Record<string, string>) => `${m.source_workload} -> ${m.destination_workload}`;
  const edges = new Map<string, EdgeStats>();
  const edge = (m: Record<string, string>) => {
    const k = key(m);
    if (!edges.has(k)) {
      edges.set(k, { source: m.source_workload, destination: m.destination_workload, rps: 0, errorRate: 0, p50: NaN, p99: NaN, sourceCount: 0, destinationCount: 0 });
    }
    return edges.get(k)!;
  };
  for (const s of counts) {
    if (s.metric.reporter === "source") edge(s.metric).sourceCount = s.value;
    if (s.metric.reporter === "destination") edge(s.metric).destinationCount = s.value;
  }
  for (const s of rps) edge(s.metric).rps = s.value;
  for (const s of errors) if (Number.isFinite(s.value)) edge(s.metric).errorRate = s.value;
  for (const s of p50) edge(s.metric).p50 = s.value;
  for (const s of p99) edge(s.metric).p99 = s.value;
  return [...edges.values()].sort((a, b) => depthKey(a).localeCompare(depthKey(b)));
}

// Gateway edges first, then by source and destination name: reads top-down like the call chain.
function depthKey(e: EdgeStats): string {
  return `${e.source.includes("gateway") ? "0" : "1"}${e.source} ${e.destination}`;
}

const fmt = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : "-");

export function formatEdgeTable(edges: EdgeStats[]): string {
  const header = ["source -> destination", "req/s", "errors", "p50 ms", "p99 ms", "requests (source | destination reporter)"];
  const rows = edges.map((e) => [
    `${e.source} -> ${e.destination}`,
    fmt(e.rps),
    `${(e.errorRate * 100).toFixed(1)}%`,
    fmt(e.p50),
    fmt(e.p99),
    `${e.sourceCount} | ${e.destinationCount}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => "  " + cells.map((c, i) => (i === 0 || i === 5 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("   ").trimEnd();
  return [line(header), "  " + widths.map((w) => "-".repeat(w)).join("   "), ...rows.map(line)].join("\n");
}

/** The trace with the longest overall duration among recent ones, or undefined when Zipkin has none. */
export async function slowestTrace(zipkin: Zipkin, lookbackMs = 3600_000): Promise<ZipkinSpan[] | undefined> {
  const traces = await zipkin.traces({ limit: 1000, lookback: lookbackMs });
  let best: ZipkinSpan[] | undefined;
  let bestDuration = -1;
  for (const t of traces) {
    const d = traceDuration(t);
    if (d > bestDuration) {
      bestDuration = d;
      best = t;
    }
  }
  return best;
}

export function traceDuration(spans: ZipkinSpan[]): number {
  const starts = spans.filter((s) => s.timestamp !== undefined).map((s) => s.timestamp!);
  const ends = spans.filter((s) => s.timestamp !== undefined).map((s) => s.timestamp! + (s.duration ?? 0));
  return starts.length ? Math.max(...ends) - Math.min(...starts) : 0;
}

/** The spans as a tree by parentId, children by start time: `name  [service kind]  12.3 ms`. */
export function formatTraceTree(spans: ZipkinSpan[]): string {
  const byId = new Map(spans.map((s) => [s.id, s]));
  const children = new Map<string, ZipkinSpan[]>();
  const roots: ZipkinSpan[] = [];
  for (const s of spans) {
    if (s.parentId && byId.has(s.parentId) && s.parentId !== s.id) {
      if (!children.has(s.parentId)) children.set(s.parentId, []);
      children.get(s.parentId)!.push(s);
    } else roots.push(s);
  }
  const t0 = Math.min(...spans.map((s) => s.timestamp ?? Infinity));
  const lines: string[] = [`trace ${spans[0]?.traceId}: ${spans.length} spans, ${(traceDuration(spans) / 1000).toFixed(1)} ms`];
  const byStart = (a: ZipkinSpan, b: ZipkinSpan) => (a.timestamp ?? 0) - (b.timestamp ?? 0);
  const walk = (s: ZipkinSpan, depth: number) => {
    const offset = s.timestamp !== undefined ? `+${((s.timestamp - t0) / 1000).toFixed(1)} ms` : "";
    const status = s.tags?.["http.status_code"] ? ` ${s.tags["http.status_code"]}` : "";
    const err = s.tags?.error !== undefined ? " ERROR" : "";
    lines.push(`${"  ".repeat(depth + 1)}${s.name ?? "(unnamed)"}  [${s.localEndpoint?.serviceName ?? "?"} ${s.kind ?? ""}]${status}${err}  ${((s.duration ?? 0) / 1000).toFixed(1)} ms  ${offset}`);
    for (const c of (children.get(s.id) ?? []).sort(byStart)) walk(c, depth + 1);
  };
  for (const r of roots.sort(byStart)) walk(r, 0);
  return lines.join("\n");
}
