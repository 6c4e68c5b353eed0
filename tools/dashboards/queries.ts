// Istio's Grafana dashboards as data: every panel query (`targets[].expr`, nested rows
// included), the dashboard variables and Grafana's rules for substituting them, and a
// classification of each query by the metrics it reads. The test (tests/integration/
// dashboards.test.ts) runs every query against a real Prometheus; the page
// (tools/dashboards/page.ts) charts some of them.
//
// The dashboards are test data: `make deps` puts Istio's own files in .cache/istio-dashboards
// (from shared/istio-dashboards beside the clone, or from istio/istio through the Go module
// proxy); they are never copied into this repository.
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { ROOT, httpRequest } from "../../tests/harness/envoy.ts";
import { metricNames, parsePromQL, type Node } from "./promql.ts";

/** Where Istio's dashboards live (see the Makefile's ISTIO_DASHBOARDS). */
export const DASHBOARDS_DIR = process.env.ISTIO_DASHBOARDS_DIR ?? resolve(ROOT, ".cache/istio-dashboards");

export interface DashboardVariable {
  name: string;
  type: string;
  /** The variable's query (for `query` variables, often Grafana's `query_result(...)`). */
  query: string;
  /** Grafana's extraction regex, `/.../flags`, applied to each query_result line. */
  regex: string;
  multi: boolean;
  includeAll: boolean;
  allValue: string | null;
  /** Options of `custom` variables. */
  options: string[];
  /** The value saved in the dashboard ("$__all" for All). */
  current: string[];
}

export interface PanelQuery {
  /** Dashboard file name and title. */
  file: string;
  dashboard: string;
  panelId: number;
  panelTitle: string;
  panelType: string;
  /** Title of the row the panel sits under ("" for none). */
  row: string;
  refId: string;
  /** The query as written in the dashboard, variables unsubstituted. */
  expr: string;
  legendFormat: string;
  /** Grafana runs it as an instant query (tables) rather than a range query. */
  instant: boolean;
  hidden: boolean;
}

export interface Dashboard {
  file: string;
  title: string;
  uid: string;
  variables: DashboardVariable[];
  queries: PanelQuery[];
  /** Every panel, with or without queries (rows and text panels have none). */
  panels: Array<{ id: number; title: string; type: string; row: string }>;
}

export function loadDashboards(dir = DASHBOARDS_DIR): Dashboard[] {
  if (!existsSync(dir)) throw new Error(`Istio dashboards not found at ${dir}: run make deps`);
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => parseDashboard(f, JSON.parse(readFileSync(join(dir, f), "utf8"))));
}

export function parseDashboard(file: string, json: any): Dashboard {
  const queries: PanelQuery[] = [];
  const panels: Dashboard["panels"] = [];
  let row = "";
  const visit = (panel: any, rowTitle: string) => {
    panels.push({ id: panel.id, title: panel.title ?? "", type: panel.type ?? "", row: rowTitle });
    for (const [i, t] of (panel.targets ?? []).entries()) {
      if (typeof t.expr !== "string" || t.expr.trim() === "") continue;
      queries.push({
        file,
        dashboard: json.title,
        panelId: panel.id,
        panelTitle: panel.title ?? "",
        panelType: panel.type ?? "",
        row: rowTitle,
        refId: t.refId ?? String.fromCharCode(65 + i),
        expr: t.expr,
        legendFormat: t.legendFormat ?? "",
        instant: t.instant === true,
        hidden: t.hide === true,
      });
    }
    // A collapsed row keeps its panels inside it.
    for (const child of panel.panels ?? []) visit(child, panel.type === "row" ? panel.title ?? "" : rowTitle);
  };
  for (const panel of json.panels ?? []) {
    if (panel.type === "row") row = panel.title ?? "";
    visit(panel, panel.type === "row" ? "" : row);
  }
  // Pre-Grafana-5 dashboards: rows[].panels.
  for (const r of json.rows ?? []) for (const panel of r.panels ?? []) visit(panel, r.title ?? "");

  const variables: DashboardVariable[] = (json.templating?.list ?? []).map((v: any) => {
    const current = v.current?.value;
    return {
      name: v.name,
      type: v.type,
      query: typeof v.query === "string" ? v.query : v.query?.query ?? v.definition ?? "",
      regex: v.regex ?? "",
      multi: v.multi === true,
      includeAll: v.includeAll === true,
      allValue: v.allValue ?? null,
      options: (v.options ?? []).map((o: any) => String(o.value)),
      current: current === undefined ? [] : Array.isArray(current) ? current.map(String) : [String(current)],
    };
  });
  return { file, title: json.title, uid: json.uid ?? "", variables, queries, panels };
}

// ---- Substitution, as Grafana's Prometheus data source does it ----

/** Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval). */
export function rateInterval(scrapeIntervalS: number, intervalS: number): string {
  return `${Math.max(intervalS + scrapeIntervalS, 4 * scrapeIntervalS)}s`;
}

/** Grafana's escaping of a single-valued variable used in PromQL (`prometheusRegularEscape`). */
export function regularEscape(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/'/g, "\\\\'");
}

/** Grafana's escaping of one value of a multi-value or All variable (`prometheusSpecialRegexEscape`). */
export function regexEscape(value: string): string {
  return value.replace(/\\/g, "\\\\\\\\\\\\\\\\").replace(/[$^*{}\[\]'+?.()|]/g, "\\\\$&");
}

/**
 * A variable's values as Grafana writes them into a Prometheus query: single-valued variables
 * escaped for a string literal; multi-value and All-capable ones regex-escaped and joined as
 * `(a|b)` (one value stays bare).
 */
export function formatValues(values: string[], v?: Pick<DashboardVariable, "multi" | "includeAll">): string {
  if (!v || (!v.multi && !v.includeAll)) return regularEscape(values[0] ?? "");
  const escaped = values.map(regexEscape);
  return escaped.length === 1 ? escaped[0] : `(${escaped.join("|")})`;
}

export interface Substitution {
  /** Dashboard variables by name: one value, or several (multi-value / All). */
  values: Record<string, string | string[]>;
  /** Grafana's built-ins: $__rate_interval, $__interval, $__range, ... (already formatted). */
  builtins: Record<string, string>;
}

export function builtins(opts: { scrapeIntervalS: number; intervalS: number; rangeS: number }): Record<string, string> {
  return {
    __rate_interval: rateInterval(opts.scrapeIntervalS, opts.intervalS),
    __rate_interval_ms: String(1000 * Number(rateInterval(opts.scrapeIntervalS, opts.intervalS).slice(0, -1))),
    __interval: `${opts.intervalS}s`,
    __interval_ms: String(opts.intervalS * 1000),
    __range: `${Math.round(opts.rangeS)}s`,
    __range_s: String(Math.round(opts.rangeS)),
    __range_ms: String(Math.round(opts.rangeS * 1000)),
  };
}

// $name, ${name}, ${name:format}, [[name]], [[name:format]] (Grafana's three variable syntaxes).
const VARIABLE = /\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]/g;

/** Names of the variables a text refers to, in any of Grafana's syntaxes. */
export function referencedVariables(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(VARIABLE)) names.add(m[1] ?? m[2] ?? m[4]);
  return [...names].sort();
}

/**
 * Replaces every variable reference in `expr`. Throws on a variable it has no value for, so a
 * new variable in a dashboard is noticed rather than sent to Prometheus as text.
 */
export function substitute(expr: string, sub: Substitution, variables: DashboardVariable[] = []): string {
  const byName = new Map(variables.map((v) => [v.name, v]));
  return expr.replace(VARIABLE, (whole, a, b, fmtB, c, fmtC) => {
    const name: string = a ?? b ?? c;
    const format: string | undefined = fmtB ?? fmtC;
    if (name in sub.builtins) return sub.builtins[name];
    if (!(name in sub.values)) throw new Error(`no value for dashboard variable '${name}' in: ${expr}`);
    const raw = sub.values[name];
    const values = Array.isArray(raw) ? raw : [raw];
    if (format === "raw") return values.join(",");
    if (format === "regex") return values.length === 1 ? regexEscape(values[0]) : `(${values.map(regexEscape).join("|")})`;
    if (format === "pipe") return values.join("|");
    if (format === "csv") return values.join(",");
    if (format !== undefined) throw new Error(`unsupported variable format '${format}' in ${whole}`);
    const meta = byName.get(name);
    return formatValues(values, meta ?? { multi: Array.isArray(raw), includeAll: false });
  });
}

// ---- Variable queries (Grafana's query_result) ----

/** The PromQL inside a `query_result(...)` variable query (other query kinds are not PromQL). */
export function variableQueryExpr(query: string): string | undefined {
  const m = /^\s*query_result\(([\s\S]*)\)\s*$/.exec(query);
  return m ? m[1] : undefined;
}

/** One instant-query result as Grafana's query_result renders it: `name{a="b",...} value tsMs`. */
export function queryResultLine(metric: Record<string, string>, value: number, timeS: number): string {
  const { __name__: name = "", ...labels } = metric;
  const body = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(",");
  return `${name}{${body}} ${value} ${Math.round(timeS * 1000)}`;
}

/** Applies a variable's `/regex/flags` to query_result lines: first group (or whole match), unique, sorted. */
export function extractVariableValues(lines: string[], regex: string): string[] {
  const values = new Set<string>();
  const m = /^\/(.*)\/([a-z]*)$/s.exec(regex);
  const re = m ? new RegExp(m[1], m[2].replace("g", "")) : undefined;
  for (const line of lines) {
    if (!re) {
      values.add(line);
      continue;
    }
    const hit = re.exec(line);
    if (hit) values.add(hit[1] ?? hit[0]);
  }
  return [...values].sort();
}

/**
 * The order to resolve a dashboard's query variables in: each after the variables its query
 * refers to.
 */
export function variableOrder(variables: DashboardVariable[]): DashboardVariable[] {
  const names = new Set(variables.map((v) => v.name));
  const done = new Set<string>();
  const out: DashboardVariable[] = [];
  const pending = [...variables];
  while (pending.length > 0) {
    const i = pending.findIndex((v) => referencedVariables(v.query).every((r) => !names.has(r) || done.has(r) || r === v.name));
    if (i < 0) throw new Error(`cyclic dashboard variables: ${pending.map((v) => v.name).join(", ")}`);
    const [v] = pending.splice(i, 1);
    done.add(v.name);
    out.push(v);
  }
  return out;
}

// ---- Classification ----

export type TrafficKind = "http" | "grpc" | "tcp" | "other";

/**
 * The kind of traffic a metric describes. Istio's request metrics (`istio_requests_total`,
 * `istio_request_duration_*`, `istio_request_bytes`, `istio_response_bytes`) count HTTP and
 * gRPC alike ("http"); the streaming message counters are gRPC only ("grpc");
 * `istio_tcp_*` is TCP; anything else (e.g. `istio_build`, kube-state, cAdvisor) is "other".
 */
export function metricKind(name: string): TrafficKind {
  if (/^istio_(request|response)_messages_total$/.test(name)) return "grpc";
  if (/^istio_tcp_/.test(name)) return "tcp";
  if (/^istio_(requests_total|request_duration_(milliseconds|seconds)|request_bytes|response_bytes)(_bucket|_sum|_count)?$/.test(name)) return "http";
  return "other";
}

export interface ClassifiedQuery extends PanelQuery {
  ast: Node;
  metrics: string[];
  kinds: TrafficKind[];
  /** The one kind that decides when the query should have data: http > grpc > tcp > other. */
  kind: TrafficKind;
}

/**
 * Parses a query (with variables replaced by placeholders, so the dashboard's own text is
 * classified) and classifies it by the metrics it selects. A query selecting several kinds
 * (e.g. a ms histogram `or` the legacy seconds one) takes the first of http, grpc, tcp, other.
 */
export function classify(q: PanelQuery, variables: DashboardVariable[] = []): ClassifiedQuery {
  const values: Record<string, string[]> = {};
  for (const v of variables) values[v.name] = ["x"];
  const text = substitute(q.expr, { values, builtins: builtins({ scrapeIntervalS: 15, intervalS: 15, rangeS: 3600 }) }, variables);
  const ast = parsePromQL(text);
  const metrics = metricNames(ast);
  const kinds = [...new Set(metrics.map(metricKind))].sort();
  const order: TrafficKind[] = ["http", "grpc", "tcp", "other"];
  const kind = order.find((k) => kinds.includes(k)) ?? "other";
  return { ...q, ast, metrics, kinds, kind };
}

/** A panel's kind: the kinds of its queries ("none" for rows and text panels). */
export function panelKinds(queries: ClassifiedQuery[]): Map<string, TrafficKind[]> {
  const out = new Map<string, TrafficKind[]>();
  for (const q of queries) {
    const key = panelKey(q);
    const kinds = new Set(out.get(key) ?? []);
    kinds.add(q.kind);
    out.set(key, [...kinds].sort());
  }
  return out;
}

export function panelKey(q: Pick<PanelQuery, "file" | "panelId" | "panelTitle">): string {
  return `${q.file}#${q.panelId} ${q.panelTitle}`;
}

export function queryKey(q: Pick<PanelQuery, "file" | "panelId" | "panelTitle" | "refId">): string {
  return `${panelKey(q)} [${q.refId}]`;
}

// ---- Running queries (Prometheus's HTTP API) ----

export interface InstantSample {
  metric: Record<string, string>;
  value: number;
}

export interface RangeSeries {
  metric: Record<string, string>;
  /** [epoch seconds, value] */
  values: Array<[number, number]>;
}

async function promGet(baseUrl: string, path: string, params: Record<string, string>): Promise<any> {
  const res = await httpRequest(`${baseUrl}${path}?${new URLSearchParams(params)}`, { timeoutMs: 15000 });
  let body: any;
  try {
    body = JSON.parse(res.body);
  } catch {
    throw new Error(`${path}: HTTP ${res.status}: ${res.body.slice(0, 300)}`);
  }
  if (body.status !== "success") throw new PromQueryError(params.query, `${body.errorType}: ${body.error}`);
  return body.data;
}

export class PromQueryError extends Error {
  constructor(readonly query: string, readonly reason: string) {
    super(`${reason} in: ${query}`);
  }
}

/** An instant query at `timeS` (epoch seconds); a scalar answer becomes one sample without labels. */
export async function instantQuery(baseUrl: string, query: string, timeS?: number): Promise<InstantSample[]> {
  const params: Record<string, string> = { query };
  if (timeS !== undefined) params.time = timeS.toFixed(3);
  const data = await promGet(baseUrl, "/api/v1/query", params);
  if (data.resultType === "scalar") return [{ metric: {}, value: Number(data.result[1]) }];
  if (data.resultType !== "vector") throw new PromQueryError(query, `unexpected result type ${data.resultType}`);
  return data.result.map((r: any) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

/** A range query, as Grafana runs a time-series panel. */
export async function rangeQuery(baseUrl: string, query: string, startS: number, endS: number, stepS: number): Promise<RangeSeries[]> {
  const data = await promGet(baseUrl, "/api/v1/query_range", { query, start: startS.toFixed(3), end: endS.toFixed(3), step: String(stepS) });
  return data.result.map((r: any) => ({ metric: r.metric, values: r.values.map(([t, v]: [number, string]) => [Number(t), Number(v)]) }));
}

/** Grafana's legend: `{{ label }}` replaced by the series' label values. */
export function legend(format: string, metric: Record<string, string>, fallback = ""): string {
  if (!format) return fallback || JSON.stringify(metric);
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_m, l: string) => metric[l] ?? "");
}
