// What the demo shows: per-edge request rate, error rate and latency percentiles (HTTP edges) and
// bytes per second (TCP edges) computed by PromQL through Prometheus's HTTP API (the queries
// Istio's dashboards and Kiali run), and the slowest trace Zipkin holds as an indented tree.
import { httpRequest } from "../../tests/harness/envoy.ts";
import type { Zipkin, ZipkinSpan } from "../../tests/harness/zipkin.ts";

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
  /** http: istio_requests_total and friends; tcp: the istio_tcp_* family (no requests, no latency). */
  protocol: "http" | "tcp";
  /** requests/s, errors/s and latency from the client side (reporter="source"), as Kiali's graph. */
  rps: number;
  errorRate: number;
  p50: number;
  p99: number;
  /** Bytes/s both ways (istio_tcp_sent + received, reporter="source"), as Kiali's TCP edges; 0 for HTTP. */
  bytesPerSecond: number;
  /** Cumulative counts each reporter has for the edge (both sidecars saw it): requests, or bytes both ways for TCP. */
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
    tcpBytes: `sum by (${EDGE}) (rate(istio_tcp_sent_bytes_total{reporter="source"}[${w}])) + sum by (${EDGE}) (rate(istio_tcp_received_bytes_total{reporter="source"}[${w}]))`,
    tcpCounts: `sum by (${EDGE}, reporter, source_principal) (istio_tcp_sent_bytes_total) + sum by (${EDGE}, reporter, source_principal) (istio_tcp_received_bytes_total)`,
  };
}

/**
 * Edge statistics over the `windowS` seconds before `at` (unix seconds): the traffic run's
 * window, evaluated once Prometheus has scraped its end.
 */
export async function edgeStats(prometheusUrl: string, windowS: number, at?: number): Promise<EdgeStats[]> {
  const q = edgeQueries(`${Math.max(1, Math.round(windowS))}s`);
  const [rps, errors, p50, p99, tcpBytes] = await Promise.all([q.rps, q.errors, q.p50, q.p99, q.tcpBytes].map((query) => promQuery(prometheusUrl, query, at)));
  // Totals as of the latest scrape (not `at`, which may fall between the last two scrapes).
  const [counts, tcpCounts] = await Promise.all([promQuery(prometheusUrl, q.counts), promQuery(prometheusUrl, q.tcpCounts)]);
  const edges = new Map<string, EdgeStats>();
  const edge = (m: Record<string, string>, protocol: EdgeStats["protocol"]) => {
    const k = `${m.source_workload} -> ${m.destination_workload} ${protocol}`;
    if (!edges.has(k)) {
      edges.set(k, { source: m.source_workload, destination: m.destination_workload, protocol, rps: 0, errorRate: 0, p50: NaN, p99: NaN, bytesPerSecond: 0, sourceCount: 0, destinationCount: 0 });
    }
    return edges.get(k)!;
  };
  // Edges as their client sides report them (Kiali's default); a server side's totals join the
  // edge it belongs to. Callers outside the mesh (plaintext, source unknown) make no edge.
  for (const [samples, protocol] of [[counts, "http"], [tcpCounts, "tcp"]] as const) {
    for (const s of samples) if (s.metric.reporter === "source") edge(s.metric, protocol).sourceCount = s.value;
    for (const s of samples) {
      if (s.metric.reporter !== "destination") continue;
      const into = [...edges.values()].filter((e) => e.protocol === protocol && e.destination === s.metric.destination_workload);
      const same = into.find((e) => e.source === s.metric.source_workload);
      // A TCP server side has no metadata exchange (docs/tcp.md): the source workload is
      // unknown but the client's certificate names it, so an mTLS connection joins the one
      // client-reported edge into that destination.
      const tcpPeer = protocol === "tcp" && s.metric.source_workload === "unknown" && s.metric.source_principal !== "unknown" && into.length === 1;
      const target = same ?? (tcpPeer ? into[0] : undefined);
      if (target) target.destinationCount += s.value;
    }
  }
  for (const s of rps) edge(s.metric, "http").rps = s.value;
  for (const s of errors) if (Number.isFinite(s.value)) edge(s.metric, "http").errorRate = s.value;
  for (const s of p50) edge(s.metric, "http").p50 = s.value;
  for (const s of p99) edge(s.metric, "http").p99 = s.value;
  for (const s of tcpBytes) edge(s.metric, "tcp").bytesPerSecond = s.value;
  return [...edges.values()].sort((a, b) => depthKey(a).localeCompare(depthKey(b)));
}

// Gateway edges first, then by source and destination name: reads top-down like the call chain.
function depthKey(e: EdgeStats): string {
  return `${e.source.includes("gateway") ? "0" : "1"}${e.source} ${e.destination} ${e.protocol}`;
}

const fmt = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : "-");

export function formatEdgeTable(edges: EdgeStats[]): string {
  const header = ["source -> destination", "proto", "req/s", "errors", "p50 ms", "p99 ms", "bytes/s", "totals (source | destination reporter)"];
  const rows = edges.map((e) => e.protocol === "tcp"
    ? [`${e.source} -> ${e.destination}`, "tcp", "-", "-", "-", "-", fmt(e.bytesPerSecond), `${e.sourceCount} | ${e.destinationCount} bytes`]
    : [
      `${e.source} -> ${e.destination}`,
      "http",
      fmt(e.rps),
      `${(e.errorRate * 100).toFixed(1)}%`,
      fmt(e.p50),
      fmt(e.p99),
      "-",
      `${e.sourceCount} | ${e.destinationCount} requests`,
    ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const left = new Set([0, 1, 7]);
  const line = (cells: string[]) => "  " + cells.map((c, i) => (left.has(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("   ").trimEnd();
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
