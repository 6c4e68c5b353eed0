// What a dashboard query should return, computed from the traffic that was driven rather than
// read back from Prometheus: the driven flows become the series Istio would export (each with
// its per-second rate, and histogram buckets from the latencies and sizes sent), and a small
// evaluator runs the parsed query (tools/dashboards/promql.ts) over them. The test compares
// Prometheus's answer on the plugin's real metrics with this answer, series by series.
import type { Matcher, Node } from "../tools.ts";
import { serviceHost, type ServiceRef, type Workload } from "../sidecars.ts";

/** Envoy's default histogram buckets, which the plugin's histograms use. */
export const ENVOY_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];


/** One kind of request a flow sends, at a steady rate. */
export interface RequestClass {
  perSecond: number;
  code: string;
  grpcStatus?: string;
  /** Typical values; what matters is the histogram bucket they fall in. */
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
}

/** Steady traffic from one client sidecar to one service, as driven. */
export interface Flow {
  protocol: "http" | "grpc" | "tcp";
  source: Workload;
  destination: Workload;
  service: ServiceRef;
  mtls: boolean;
  requests?: RequestClass[];
  /** TCP: bytes per second from the client (received by the proxies) and back (sent). */
  tcp?: { receivedPerSecond: number; sentPerSecond: number };
}

export interface ModelSeries {
  name: string;
  labels: Record<string, string>;
  /** Per-second rate during the steady traffic. */
  rate: number;
  /** A gauge's value (counters' totals are not modelled). */
  value?: number;
}

function workloadLabels(side: "source" | "destination", w: Workload | null): Record<string, string> {
  return {
    [`${side}_workload`]: w?.workload ?? "unknown",
    [`${side}_workload_namespace`]: w?.namespace ?? "unknown",
    [`${side}_app`]: w?.app ?? "unknown",
    [`${side}_version`]: w?.version ?? "unknown",
    [`${side}_canonical_service`]: w?.app ?? "unknown",
    [`${side}_canonical_revision`]: w?.version ?? "latest",
    [`${side}_cluster`]: w ? w.cluster ?? "Kubernetes" : "unknown",
  };
}

export interface ModelOptions {
  /**
   * Whether the destination reporter knows a TCP client. Istio's sidecars learn it through
   * their TCP metadata exchange (ALPN `istio-peer-exchange`, mTLS connections only); the
   * plugin has no TCP exchange, so by default its destination reporter says `unknown`.
   */
  tcpPeerOverMtls?: boolean;
  /**
   * istio_build{component="proxy",tag} 1 from each proxy running the plugin (the tag is the
   * node metadata's ISTIO_VERSION), as Istio's stats filter reports it.
   */
  build?: { tag: string; proxies: number };
}

/**
 * The series Istio's standard metrics have for the flows, on both reporters: the client's
 * sidecar reports `source` (security policy `unknown`, as Istio's outbound does), the server's
 * `destination` (`mutual_tls` or `none`). HTTP and gRPC learn the peer through the metadata
 * exchange; TCP has none in Wasm, so the destination reporter's source is `unknown` (unless
 * `tcpPeerOverMtls`, which models Istio's own sidecars).
 */
export function modelSeries(flows: Flow[], opts: ModelOptions = {}): ModelSeries[] {
  const out = new Map<string, ModelSeries>();
  const add = (name: string, all: Record<string, string>, rate: number) => {
    // Prometheus treats an empty label as an absent one.
    const labels = Object.fromEntries(Object.entries(all).filter(([, v]) => v !== ""));
    const key = name + JSON.stringify(Object.entries(labels).sort());
    const s = out.get(key);
    if (s) s.rate += rate;
    else out.set(key, { name, labels, rate });
  };
  for (const f of flows) {
    for (const reporter of ["source", "destination"] as const) {
      const knowsSource = reporter === "source" || f.protocol !== "tcp" || (opts.tcpPeerOverMtls === true && f.mtls);
      const source = workloadLabels("source", knowsSource ? f.source : null);
      // Without the workload, an mTLS peer's namespace still comes from its SPIFFE id, as in Istio.
      if (!knowsSource && f.mtls) source.source_workload_namespace = f.source.namespace;
      const base: Record<string, string> = {
        reporter,
        ...source,
        ...workloadLabels("destination", f.destination),
        destination_service: serviceHost(f.service),
        destination_service_name: f.service.name,
        destination_service_namespace: f.service.namespace,
        request_protocol: f.protocol,
        response_flags: "-",
        connection_security_policy: reporter === "source" ? "unknown" : f.mtls ? "mutual_tls" : "none",
      };
      if (f.tcp) {
        add("istio_tcp_received_bytes_total", base, f.tcp.receivedPerSecond);
        add("istio_tcp_sent_bytes_total", base, f.tcp.sentPerSecond);
        continue;
      }
      for (const r of f.requests ?? []) {
        const labels = { ...base, response_code: r.code, grpc_response_status: f.protocol === "grpc" ? r.grpcStatus ?? "0" : "" };
        add("istio_requests_total", labels, r.perSecond);
        const histograms: Array<[string, number]> = [
          ["istio_request_duration_milliseconds", r.durationMs],
          ["istio_request_bytes", r.requestBytes],
          ["istio_response_bytes", r.responseBytes],
        ];
        for (const [name, value] of histograms) {
          for (const le of ENVOY_BUCKETS) add(`${name}_bucket`, { ...labels, le: String(le) }, value <= le ? r.perSecond : 0);
          add(`${name}_bucket`, { ...labels, le: "+Inf" }, r.perSecond);
          add(`${name}_count`, labels, r.perSecond);
          add(`${name}_sum`, labels, r.perSecond * value);
        }
      }
    }
  }
  if (opts.build) out.set("istio_build", { name: "istio_build", labels: { component: "proxy", tag: opts.build.tag }, rate: 0, value: opts.build.proxies });
  return [...out.values()];
}

// ---- Evaluation ----

/** An expected sample: the value, and the interval a measured value may fall in (histogram buckets). */
export interface ExpectedSample {
  labels: Record<string, string>;
  v: number;
  lo: number;
  hi: number;
}

type Value =
  | { kind: "vector"; samples: ExpectedSample[] }
  | { kind: "scalar"; v: number }
  | { kind: "string"; s: string };

export function matches(labels: Record<string, string>, m: Matcher): boolean {
  const value = labels[m.label] ?? "";
  switch (m.op) {
    case "=":
      return value === m.value;
    case "!=":
      return value !== m.value;
    case "=~":
      return new RegExp(`^(?:${m.value})$`).test(value);
    case "!~":
      return !new RegExp(`^(?:${m.value})$`).test(value);
  }
}

function signature(labels: Record<string, string>, on?: { on: boolean; labels: string[] }): string {
  const keys = Object.keys(labels)
    .filter((k) => k !== "__name__")
    .filter((k) => (on ? (on.on ? on.labels.includes(k) : !on.labels.includes(k)) : true))
    .sort();
  return JSON.stringify(keys.map((k) => [k, labels[k]]));
}

function dropName(labels: Record<string, string>): Record<string, string> {
  const { __name__: _drop, ...rest } = labels;
  return rest;
}

/** Prometheus's histogram_quantile over expected bucket rates, with the bucket it lands in. */
function quantile(q: number, buckets: Array<{ le: number; v: number }>): { v: number; lo: number; hi: number } {
  buckets.sort((a, b) => a.le - b.le);
  const total = buckets[buckets.length - 1]?.v ?? 0;
  if (buckets.length < 2 || buckets[buckets.length - 1].le !== Infinity || total === 0) return { v: NaN, lo: NaN, hi: NaN };
  const rank = q * total;
  const i = buckets.findIndex((b) => b.v >= rank);
  if (i === buckets.length - 1) {
    const le = buckets[buckets.length - 2].le;
    return { v: le, lo: le, hi: le };
  }
  const start = i === 0 ? 0 : buckets[i - 1].le;
  const end = buckets[i].le;
  const below = i === 0 ? 0 : buckets[i - 1].v;
  const v = start + ((end - start) * (rank - below)) / (buckets[i].v - below);
  // A rank within 5% of the total from a bucket edge may fall either side of it in a
  // measured window; widen the interval to the neighbouring bucket then.
  let lo = start;
  let hi = end;
  if (i > 0 && rank - below < 0.05 * total) lo = i > 1 ? buckets[i - 2].le : 0;
  if (buckets[i].v - rank < 0.05 * total && i + 1 < buckets.length - 1) hi = buckets[i + 1].le;
  return { v, lo, hi };
}

/**
 * Evaluates a parsed query over the model's series. An instant selector without a range reads a
 * gauge's value, else NaN (totals are not modelled; variable queries only need the label sets).
 */
export function evaluate(node: Node, series: ModelSeries[]): Value {
  switch (node.type) {
    case "number":
      return { kind: "scalar", v: node.value };
    case "string":
      return { kind: "string", s: node.value };
    case "paren":
      return evaluate(node.expr, series);
    case "unary": {
      const v = evaluate(node.expr, series);
      if (node.op === "+") return v;
      if (v.kind === "scalar") return { kind: "scalar", v: -v.v };
      if (v.kind === "vector") return { kind: "vector", samples: v.samples.map((s) => ({ labels: dropName(s.labels), v: -s.v, lo: -s.hi, hi: -s.lo })) };
      throw new Error("unary minus on a string");
    }
    case "selector": {
      const samples = series
        .filter((s) => (node.name === "" || s.name === node.name) && node.matchers.every((m) => matches({ __name__: s.name, ...s.labels }, m)))
        .map((s) => {
          const v = node.range ? s.rate : s.value ?? NaN;
          return { labels: { __name__: s.name, ...s.labels }, v, lo: v, hi: v };
        });
      return { kind: "vector", samples };
    }
    case "subquery":
      throw new Error("subqueries are not modelled");
    case "call":
      return call(node.fn, node.args, series);
    case "aggregate": {
      const v = evaluate(node.expr, series);
      if (v.kind !== "vector") throw new Error(`${node.op} over a non-vector`);
      if (!["sum", "max", "min", "count", "avg"].includes(node.op)) throw new Error(`aggregation ${node.op} is not modelled`);
      const groups = new Map<string, { labels: Record<string, string>; members: ExpectedSample[] }>();
      for (const s of v.samples) {
        const labels: Record<string, string> = {};
        const src = dropName(s.labels);
        if (node.grouping && !node.grouping.without) {
          for (const l of node.grouping.labels) if (src[l] !== undefined && src[l] !== "") labels[l] = src[l];
        } else if (node.grouping?.without) {
          for (const [k, val] of Object.entries(src)) if (!node.grouping.labels.includes(k)) labels[k] = val;
        }
        const key = JSON.stringify(Object.entries(labels).sort());
        const g = groups.get(key) ?? { labels, members: [] };
        g.members.push(s);
        groups.set(key, g);
      }
      const samples = [...groups.values()].map((g) => {
        const pick = (f: (s: ExpectedSample) => number) => {
          const xs = g.members.map(f);
          if (node.op === "sum") return xs.reduce((a, b) => a + b, 0);
          if (node.op === "max") return Math.max(...xs);
          if (node.op === "min") return Math.min(...xs);
          if (node.op === "count") return xs.length;
          return xs.reduce((a, b) => a + b, 0) / xs.length;
        };
        return { labels: g.labels, v: pick((s) => s.v), lo: pick((s) => s.lo), hi: pick((s) => s.hi) };
      });
      return { kind: "vector", samples };
    }
    case "binary":
      return binary(node, series);
  }
}

function call(fn: string, args: Node[], series: ModelSeries[]): Value {
  const vec = (i: number): ExpectedSample[] => {
    const v = evaluate(args[i], series);
    if (v.kind !== "vector") throw new Error(`${fn}: argument ${i + 1} is not a vector`);
    return v.samples;
  };
  const num = (i: number): number => {
    const v = evaluate(args[i], series);
    if (v.kind !== "scalar") throw new Error(`${fn}: argument ${i + 1} is not a number`);
    return v.v;
  };
  const str = (i: number): string => {
    const v = evaluate(args[i], series);
    if (v.kind !== "string") throw new Error(`${fn}: argument ${i + 1} is not a string`);
    return v.s;
  };
  switch (fn) {
    case "rate":
    case "irate":
      if (args[0].type !== "selector" || !args[0].range) throw new Error(`${fn} needs a range selector`);
      return { kind: "vector", samples: vec(0).map((s) => ({ ...s, labels: dropName(s.labels) })) };
    case "histogram_quantile": {
      const q = num(0);
      const groups = new Map<string, { labels: Record<string, string>; buckets: Array<{ le: number; v: number }> }>();
      for (const s of vec(1)) {
        const { le, ...rest } = dropName(s.labels);
        if (le === undefined) continue;
        const key = JSON.stringify(Object.entries(rest).sort());
        const g = groups.get(key) ?? { labels: rest, buckets: [] };
        g.buckets.push({ le: le === "+Inf" ? Infinity : Number(le), v: s.v });
        groups.set(key, g);
      }
      return { kind: "vector", samples: [...groups.values()].map((g) => ({ labels: g.labels, ...quantile(q, g.buckets) })) };
    }
    case "round": {
      const to = args.length > 1 ? num(1) : 1;
      const r = (x: number) => Math.floor(x / to + 0.5) * to;
      return { kind: "vector", samples: vec(0).map((s) => ({ labels: dropName(s.labels), v: r(s.v), lo: r(s.lo), hi: r(s.hi) })) };
    }
    case "label_join": {
      const dst = str(1);
      const sep = str(2);
      const srcs = args.slice(3).map((_, i) => str(i + 3));
      return {
        kind: "vector",
        samples: vec(0).map((s) => {
          const joined = srcs.map((l) => s.labels[l] ?? "").join(sep);
          const labels = { ...s.labels };
          if (joined === "") delete labels[dst];
          else labels[dst] = joined;
          return { ...s, labels };
        }),
      };
    }
    case "vector":
      return { kind: "vector", samples: [{ labels: {}, v: num(0), lo: num(0), hi: num(0) }] };
    case "scalar": {
      const s = vec(0);
      return { kind: "scalar", v: s.length === 1 ? s[0].v : NaN };
    }
    default:
      throw new Error(`function ${fn} is not modelled`);
  }
}

function arith(op: string, a: number, b: number): number {
  switch (op) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      return a * b;
    case "/":
      return a / b;
    default:
      throw new Error(`operator ${op} is not modelled`);
  }
}

function binary(node: Extract<Node, { type: "binary" }>, series: ModelSeries[]): Value {
  const lhs = evaluate(node.lhs, series);
  const rhs = evaluate(node.rhs, series);
  if (node.op === "or" || node.op === "and" || node.op === "unless") {
    if (lhs.kind !== "vector" || rhs.kind !== "vector") throw new Error(`${node.op} needs vectors`);
    const sigs = new Set(lhs.samples.map((s) => signature(s.labels, node.matching)));
    if (node.op === "or") return { kind: "vector", samples: [...lhs.samples, ...rhs.samples.filter((s) => !sigs.has(signature(s.labels, node.matching)))] };
    const rsigs = new Set(rhs.samples.map((s) => signature(s.labels, node.matching)));
    const keep = lhs.samples.filter((s) => rsigs.has(signature(s.labels, node.matching)) === (node.op === "and"));
    return { kind: "vector", samples: keep };
  }
  if (lhs.kind === "scalar" && rhs.kind === "scalar") return { kind: "scalar", v: arith(node.op, lhs.v, rhs.v) };
  if (lhs.kind === "vector" && rhs.kind === "scalar") {
    return {
      kind: "vector",
      samples: lhs.samples.map((s) => {
        const a = arith(node.op, s.lo, rhs.v);
        const b = arith(node.op, s.hi, rhs.v);
        return { labels: dropName(s.labels), v: arith(node.op, s.v, rhs.v), lo: Math.min(a, b), hi: Math.max(a, b) };
      }),
    };
  }
  if (lhs.kind === "scalar" && rhs.kind === "vector") {
    return { kind: "vector", samples: rhs.samples.map((s) => ({ labels: dropName(s.labels), v: arith(node.op, lhs.v, s.v), lo: NaN, hi: NaN })) };
  }
  if (lhs.kind === "vector" && rhs.kind === "vector") {
    if (node.group) throw new Error("group_left/group_right are not modelled");
    const right = new Map(rhs.samples.map((s) => [signature(s.labels, node.matching), s]));
    const samples: ExpectedSample[] = [];
    for (const s of lhs.samples) {
      const r = right.get(signature(s.labels, node.matching));
      if (!r) continue;
      const v = arith(node.op, s.v, r.v);
      samples.push({ labels: dropName(s.labels), v, lo: v, hi: v });
    }
    return { kind: "vector", samples };
  }
  throw new Error(`operator ${node.op} on strings`);
}

/** The query's expected samples (a scalar result becomes one sample without labels). */
export function expectedSamples(node: Node, series: ModelSeries[]): ExpectedSample[] {
  const v = evaluate(node, series);
  if (v.kind === "vector") return v.samples;
  if (v.kind === "scalar") return [{ labels: {}, v: v.v, lo: v.v, hi: v.v }];
  throw new Error("a string query");
}
