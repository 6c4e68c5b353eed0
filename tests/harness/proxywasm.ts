// A proxy-wasm host in Node for testing the plugin without Envoy, in the spirit of the Go SDK's
// `proxytest`: it loads a module (V8, the engine Envoy uses), plays Envoy's side of ABI 0.2.1 and
// records what the module asks of it. A test sets node metadata, the plugin configuration and
// attributes, drives a stream through its callbacks (HTTP or TCP) and looks at the host calls
// made per callback (by function, by property path or header name), the headers written and
// removed, the metrics defined (names decoded into labels), incremented and recorded, the log,
// the HTTP calls dispatched and the timer.
//
// Envoy's behaviour is copied where a test could notice it (facts from
// shared/reference/proxywasm_envoy_oci.md): property paths are NUL-separated and walk maps;
// values come serialized (strings raw, integers 8 bytes little-endian, bools 1 byte, doubles 8
// bytes, maps in the pairs encoding); header maps are read in the pairs encoding, keys are
// lower-cased on writes, a single read returns the first value; metric ids carry the type in
// their low two bits, a counter refuses a non-positive increment and adds on record, a gauge
// sets on record, a histogram refuses increments. Everything else the module imports fails the
// call loudly, so a test never passes on a host call this file does not understand.
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { ROOT } from "./envoy.ts";
export { ROOT };
export const PLUGIN_WASM = join(ROOT, "build/plugin.wasm");

const enc = new TextEncoder();
const dec = new TextDecoder();

/** proxy_status_t */
export const Status = { Ok: 0, NotFound: 1, BadArgument: 2, SerializationFailure: 3, Empty: 7, Unimplemented: 12 } as const;
/** proxy_map_type_t */
export const MapType = { RequestHeaders: 0, RequestTrailers: 1, ResponseHeaders: 2, ResponseTrailers: 3, HttpCallResponseHeaders: 6, HttpCallResponseTrailers: 7 } as const;
/** proxy_buffer_type_t */
export const BufferType = { RequestBody: 0, ResponseBody: 1, DownstreamData: 2, UpstreamData: 3, HttpCallResponseBody: 4, VmConfiguration: 6, PluginConfiguration: 7 } as const;
export const MetricTypeName = ["counter", "gauge", "histogram"] as const;
export type MetricKind = (typeof MetricTypeName)[number];
/** config.core.v3.TrafficDirection, as xds.listener_direction reports it. */
export const Direction = { Unspecified: 0, Inbound: 1, Outbound: 2 } as const;

// ---------------------------------------------------------------------------------------------
// Attribute values, serialized as Envoy serializes them.

/** A double (Struct numbers in node metadata are doubles): 8 bytes IEEE 754, little-endian. */
export class Double {
  constructor(readonly value: number) {}
}

/**
 * An attribute value: a string (raw UTF-8), an integer (number or bigint: 8 bytes LE), a bool
 * (1 byte), bytes, a Double, a list (pairs encoding, element as key, empty value) or a map
 * (pairs encoding, values serialized recursively). A map is also walked by longer paths.
 */
export type Value = string | number | bigint | boolean | Uint8Array | Double | Value[] | { [key: string]: Value | null };

export function serializeValue(v: Value): Uint8Array {
  if (typeof v === "string") return enc.encode(v);
  if (typeof v === "number" || typeof v === "bigint") {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigInt64(0, BigInt(v), true);
    return b;
  }
  if (typeof v === "boolean") return Uint8Array.of(v ? 1 : 0);
  if (v instanceof Uint8Array) return v;
  if (v instanceof Double) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v.value, true);
    return b;
  }
  if (Array.isArray(v)) return serializePairs(v.map((e) => [serializeValue(e), new Uint8Array(0)]));
  return serializePairs(Object.entries(v).filter((e): e is [string, Value] => e[1] !== null).map(([k, e]) => [enc.encode(k), serializeValue(e)]));
}

/** The ABI's pairs encoding: u32 count, count × (u32 key length, u32 value length), then each key and value NUL-terminated. */
export function serializePairs(pairs: ReadonlyArray<readonly [string | Uint8Array, string | Uint8Array]>): Uint8Array {
  const parts = pairs.map(([k, v]) => [typeof k === "string" ? enc.encode(k) : k, typeof v === "string" ? enc.encode(v) : v] as const);
  let size = 4 + parts.length * 8;
  for (const [k, v] of parts) size += k.length + v.length + 2;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, parts.length, true);
  let at = 4 + parts.length * 8;
  parts.forEach(([k, v], i) => {
    dv.setUint32(4 + i * 8, k.length, true);
    dv.setUint32(8 + i * 8, v.length, true);
    out.set(k, at);
    at += k.length + 1;
    out.set(v, at);
    at += v.length + 1;
  });
  return out;
}

/** Decodes the pairs encoding (as the module sends headers to proxy_http_call); throws when malformed. */
export function deserializePairs(bytes: Uint8Array): Array<[string, string]> {
  if (bytes.length === 0) return [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(0, true);
  const out: Array<[string, string]> = [];
  let at = 4 + n * 8;
  for (let i = 0; i < n; i++) {
    const kn = dv.getUint32(4 + i * 8, true);
    const vn = dv.getUint32(8 + i * 8, true);
    if (at + kn + vn + 2 > bytes.length || bytes[at + kn] !== 0 || bytes[at + kn + 1 + vn] !== 0) throw new Error("malformed pairs");
    out.push([dec.decode(bytes.subarray(at, at + kn)), dec.decode(bytes.subarray(at + kn + 1, at + kn + 1 + vn))]);
    at += kn + vn + 2;
  }
  if (at !== bytes.length) throw new Error("malformed pairs: trailing bytes");
  return out;
}

/**
 * Attributes as a tree: `{ xds: { cluster_name: "c" } }`; dotted keys at the top are split on
 * dots. A null in a stream's tree hides the VM's value: the attribute is absent (NOT_FOUND).
 */
export type Properties = { [key: string]: Value | null };

function lookup(tree: Properties, path: string[]): Value | null | undefined {
  let at: Value | null | undefined = tree as Value;
  for (const part of path) {
    if (at === undefined || at === null || typeof at !== "object" || at instanceof Uint8Array || at instanceof Double) return undefined;
    if (Array.isArray(at)) {
      if (!/^\d+$/.test(part)) return undefined;
      at = at[Number(part)];
    } else {
      at = Object.prototype.hasOwnProperty.call(at, part) ? (at as any)[part] : undefined;
    }
  }
  return at;
}

/** Sets `value` at a path given as parts or as a dotted string (for keys without dots). */
export function setProperty(tree: Properties, path: string | string[], value: Value | null | undefined): void {
  const parts = typeof path === "string" ? path.split(".") : path;
  let at: any = tree;
  for (const part of parts.slice(0, -1)) {
    if (typeof at[part] !== "object" || at[part] === null || at[part] instanceof Uint8Array) at[part] = {};
    at = at[part];
  }
  const last = parts[parts.length - 1];
  if (value === undefined) delete at[last];
  else at[last] = value;
}

// ---------------------------------------------------------------------------------------------
// What the host observed.

/** One host call: which function, under which callback, and the key it named, if any. */
export interface HostCall {
  /** The import without its `proxy_` prefix, e.g. "get_property", "wasi.random_get". */
  fn: string;
  /** The module callback running, e.g. "on_request_headers"; "(none)" outside one. */
  callback: string;
  /** The effective context (set_effective_context can move it off the callback's). */
  context: number;
  /** Property path (dot-joined), header name, metric (decoded name; encoded when defined), HTTP call upstream, or the context set. */
  key?: string;
  /** Header map type, for header calls. */
  map?: number;
}

export interface HeaderWrite {
  op: "replace" | "add" | "remove";
  map: number;
  key: string;
  value?: string;
  context: number;
}

/** An encoded stat name taken apart: `a=.=1;.;b=.=2;.;name` -> name and labels. */
export interface DecodedName {
  name: string;
  labels: Record<string, string>;
}

export function decodeMetricName(encoded: string): DecodedName {
  const fields = encoded.split(";.;");
  const name = fields.pop()!;
  const labels: Record<string, string> = {};
  for (const f of fields) {
    const at = f.indexOf("=.=");
    if (at < 0) return { name: encoded, labels: {} };
    labels[f.slice(0, at)] = f.slice(at + 3);
  }
  return { name, labels };
}

export interface Metric extends DecodedName {
  id: number;
  type: MetricKind;
  /** The name as the module defined it. */
  encoded: string;
  /** Counter and gauge value (Envoy's semantics), the sum of a histogram's samples. */
  value: bigint;
  /** A histogram's recorded samples. */
  samples: bigint[];
}

export interface HttpCall {
  id: number;
  upstream: string;
  headers: Array<[string, string]>;
  body: string;
  trailers: Array<[string, string]>;
  timeoutMs: number;
  /** The context effective when the call was made (the module's origin). */
  context: number;
}

export interface LogLine {
  level: number;
  message: string;
}

/** Counts of host calls, filterable by callback, function and key. */
export class CallLog {
  readonly calls: HostCall[] = [];
  /** Every call since the last clear, recorded or not. */
  total = 0;
  /** Off: only `total` counts (for long runs such as the profiling emulator). */
  recording = true;

  count(filter: Partial<HostCall> = {}): number {
    return this.calls.filter((c) => matches(c, filter)).length;
  }

  /** Calls per "callback fn [key]" (or a coarser grouping): the shape of a request's host traffic. */
  summary(by: (c: HostCall) => string = (c) => `${c.callback} ${c.fn}${c.key !== undefined ? " " + c.key : ""}`): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.calls) out[by(c)] = (out[by(c)] ?? 0) + 1;
    return out;
  }

  clear(): void {
    this.calls.length = 0;
    this.total = 0;
  }
}

function matches(c: HostCall, f: Partial<HostCall>): boolean {
  return (Object.keys(f) as Array<keyof HostCall>).every((k) => c[k] === f[k]);
}

// ---------------------------------------------------------------------------------------------
// The VM.

export interface VmOptions {
  /** build/plugin.wasm when absent; a path or a compiled module. */
  module?: string | WebAssembly.Module;
  /** The plugin's root_id ("" by default), readable as the plugin_root_id attribute. */
  rootId?: string;
  /** Plugin configuration: an object is sent as JSON (as Envoy sends a Struct), a string as is. */
  config?: unknown;
  vmConfig?: unknown;
  /** xds.node.metadata (Istio's node metadata). */
  nodeMetadata?: { [key: string]: Value };
  /** xds.node.id */
  nodeId?: string;
  /** Attributes every context sees (merged under each stream's own). */
  properties?: Properties;
  /** The VM's environment, as vm_config.environment_variables gives it ("KEY" -> "value"). */
  env?: Record<string, string>;
  /** Seed of random_get's bytes (deterministic by default). */
  seed?: number;
  /** Wall clock in nanoseconds (proxy_get_current_time_nanoseconds); fixed unless set. */
  nowNs?: bigint;
  /** Echo the module's log lines to stderr. */
  echoLog?: boolean;
  /**
   * Envoy's CEL foreign functions (expr_create / expr_evaluate / expr_delete), on by default as
   * in the official binaries; false answers them NOT_FOUND, as an Envoy built without CEL.
   */
  cel?: boolean;
  /** Names of the probes a probed module (probes.ts) counts, by index. */
  probes?: string[];
  /** Record each host call (default); false counts them only. */
  recordCalls?: boolean;
  /** Run proxy_on_configure in the constructor (default) and throw if it refuses. */
  configure?: boolean;
}

interface ContextState {
  id: number;
  /** Attributes of this stream (its request, its connection). */
  properties: Properties;
  maps: Map<number, Array<[string, string]>>;
  buffers: Map<number, Uint8Array>;
}

const ROOT_CONTEXT = 1;

export class ProxyWasmVm {
  readonly module: WebAssembly.Module;
  readonly instance: WebAssembly.Instance;
  readonly rootId: string;
  readonly rootContext = ROOT_CONTEXT;
  /** Attributes of the VM (node, plugin, and any set for every stream). */
  readonly properties: Properties;
  readonly calls = new CallLog();
  /** Every header write or removal, in order. */
  readonly headerWrites: HeaderWrite[] = [];
  readonly metrics = new Map<number, Metric>();
  readonly logs: LogLine[] = [];
  readonly httpCalls: HttpCall[] = [];
  /** How often each probed function ran (probes.ts). */
  readonly probeCounts = new Map<string, number>();
  /** The last tick period the module asked for (0: none). */
  tickPeriodMs = 0;
  /** Whether proxy_on_configure accepted the configuration. */
  configured = false;
  config: string;
  vmConfig: string;
  env: Record<string, string>;
  nowNs: bigint;
  echoLog: boolean;

  private readonly exp: any;
  private readonly mem: WebAssembly.Memory;
  private readonly contexts = new Map<number, ContextState>();
  private nextContext = ROOT_CONTEXT + 1;
  private vmStarted = false;
  private nextMetric = 1;
  private nextCall = 1;
  private effective = ROOT_CONTEXT;
  private callback = "(none)";
  private random: () => number;
  private readonly probes: string[];
  private readonly cel: boolean;
  private readonly expressions = new Map<number, CelItem[] | CelItem>();
  private nextExpression = 1;

  constructor(options: VmOptions = {}) {
    const m = options.module ?? PLUGIN_WASM;
    this.module = typeof m === "string" ? new WebAssembly.Module(readFileSync(m)) : m;
    this.rootId = options.rootId ?? "";
    this.config = toText(options.config ?? {});
    this.vmConfig = toText(options.vmConfig ?? "");
    this.env = options.env ?? {};
    this.nowNs = options.nowNs ?? 1_700_000_000_000_000_000n;
    this.echoLog = options.echoLog ?? false;
    this.random = mulberry32(options.seed ?? 1);
    this.calls.recording = options.recordCalls ?? true;
    this.probes = options.probes ?? [];
    this.cel = options.cel ?? true;
    this.properties = { plugin_root_id: this.rootId, plugin_name: "mesh-telemetry", plugin_vm_id: "" };
    for (const [k, v] of Object.entries(options.properties ?? {})) setProperty(this.properties, k, v);
    if (options.nodeMetadata) setProperty(this.properties, ["xds", "node", "metadata"], options.nodeMetadata);
    if (options.nodeId) setProperty(this.properties, ["xds", "node", "id"], options.nodeId);
    this.contexts.set(ROOT_CONTEXT, { id: ROOT_CONTEXT, properties: {}, maps: new Map(), buffers: new Map() });

    const imports = this.imports();
    this.instance = new WebAssembly.Instance(this.module, imports);
    this.exp = this.instance.exports;
    this.mem = this.exp.memory;
    this.enter("_initialize", () => this.exp._initialize?.());
    this.enter("on_context_create", () => this.exp.proxy_on_context_create(ROOT_CONTEXT, 0));
    if (options.configure ?? true) {
      if (!this.configure()) throw new Error(`configuration refused: ${this.logs.map((l) => l.message).join(" | ")}`);
    }
  }

  /**
   * proxy_on_vm_start (the first time only) then proxy_on_configure, as Envoy starts a plugin
   * and later reconfigures it; false when refused.
   */
  configure(config?: unknown): boolean {
    if (config !== undefined) this.config = toText(config);
    const root = this.contexts.get(ROOT_CONTEXT)!;
    if (!this.vmStarted && this.exp.proxy_on_vm_start) {
      const vmConfig = enc.encode(this.vmConfig);
      root.buffers.set(BufferType.VmConfiguration, vmConfig);
      if (!this.enter("on_vm_start", () => this.exp.proxy_on_vm_start(ROOT_CONTEXT, vmConfig.length))) return (this.configured = false);
      this.vmStarted = true;
    }
    const bytes = enc.encode(this.config);
    root.buffers.set(BufferType.PluginConfiguration, bytes);
    this.configured = this.enter("on_configure", () => this.exp.proxy_on_configure(ROOT_CONTEXT, bytes.length)) !== 0;
    return this.configured;
  }

  /** The VM's linear memory in bytes. */
  get memoryBytes(): number {
    return this.mem.buffer.byteLength;
  }

  /** The module's callback `proxy_<name>` under the host's bookkeeping; returns what it returns. */
  call(name: string, context: number, a?: number, b?: number, c?: number, d?: number): number {
    const f = this.exp[`proxy_${name}`];
    if (typeof f !== "function") throw new Error(`module does not export proxy_${name}`);
    // No closure here: this runs several times per request in the profiling emulator.
    const outerCallback = this.callback;
    const outerEffective = this.effective;
    this.callback = name;
    this.effective = this.contexts.has(context) ? context : ROOT_CONTEXT;
    try {
      return f(context, a, b, c, d);
    } finally {
      this.callback = outerCallback;
      this.effective = outerEffective;
    }
  }

  /** The root's timer fires once. */
  tick(): void {
    this.call("on_tick", ROOT_CONTEXT);
  }

  /** Answers an HTTP call the module dispatched; no headers means the call failed. */
  respondToHttpCall(callId: number, headers: Array<[string, string]>, body = ""): void {
    const root = this.contexts.get(ROOT_CONTEXT)!;
    root.maps.set(MapType.HttpCallResponseHeaders, headers.slice());
    root.buffers.set(BufferType.HttpCallResponseBody, enc.encode(body));
    this.call("on_http_call_response", ROOT_CONTEXT, callId, headers.length, enc.encode(body).length, 0);
    root.maps.delete(MapType.HttpCallResponseHeaders);
    root.buffers.delete(BufferType.HttpCallResponseBody);
  }

  /** A new HTTP stream context (proxy_on_context_create); drive it through its callbacks. */
  http(properties: Properties = {}): HttpStream {
    return new HttpStream(this, this.createContext(properties));
  }

  /** A new TCP connection context (proxy_on_context_create); drive it through its callbacks. */
  connection(properties: Properties = {}): TcpConnection {
    return new TcpConnection(this, this.createContext(properties));
  }

  /** One HTTP request through every callback; returns the stream (headers as they left). */
  request(r: { headers: Array<[string, string]>; response?: Array<[string, string]>; properties?: Properties }): HttpStream {
    const s = this.http(r.properties);
    s.requestHeaders(r.headers);
    s.responseHeaders(r.response ?? [[":status", "200"]]);
    s.log();
    s.delete();
    return s;
  }

  /** Metrics whose decoded name is `name` (optionally with these label values). */
  metricsNamed(name: string, labels: Record<string, string> = {}): Metric[] {
    return [...this.metrics.values()].filter((m) => m.name === name && Object.entries(labels).every(([k, v]) => m.labels[k] === v));
  }

  /** The value of metrics named `name` with these labels, summed over every id defined for it. */
  metricValue(name: string, labels: Record<string, string> = {}): bigint {
    return this.metricsNamed(name, labels).reduce((s, m) => s + m.value, 0n);
  }

  /** @internal */
  state(context: number): ContextState {
    const c = this.contexts.get(context);
    if (!c) throw new Error(`no context ${context}`);
    return c;
  }

  /** @internal */
  dropContext(context: number): void {
    this.contexts.delete(context);
  }

  /** @internal Runs a module callback with `context` effective, recording its name for host calls. */
  enter<T>(callback: string, f: () => T, context = ROOT_CONTEXT): T {
    const outerCallback = this.callback;
    const outerEffective = this.effective;
    this.callback = callback;
    this.effective = this.contexts.has(context) ? context : ROOT_CONTEXT;
    try {
      return f();
    } finally {
      this.callback = outerCallback;
      this.effective = outerEffective;
    }
  }

  private createContext(properties: Properties): number {
    const id = this.nextContext++;
    const p: Properties = {};
    for (const [k, v] of Object.entries(properties)) setProperty(p, k, v);
    this.contexts.set(id, { id, properties: p, maps: new Map(), buffers: new Map() });
    this.call("on_context_create", id, ROOT_CONTEXT);
    return id;
  }

  private property(path: string[]): Value | undefined {
    const own = lookup(this.contexts.get(this.effective)?.properties ?? {}, path);
    if (own === null) return undefined;
    const v = own !== undefined ? own : lookup(this.properties, path);
    return v === null ? undefined : v;
  }

  private imports(): WebAssembly.Imports {
    const self = this;
    // Views are remade only when memory grows (growth detaches the old buffer). Strings go
    // through Buffer's native UTF-8 code: this host runs inside the profiling emulator's
    // measurement, so it must cost little next to the VM.
    let buffer: ArrayBuffer | null = null;
    let u8view = Buffer.alloc(0);
    let dview = new DataView(new ArrayBuffer(0));
    const u8 = () => {
      if (self.mem.buffer !== buffer) {
        buffer = self.mem.buffer;
        u8view = Buffer.from(buffer);
        dview = new DataView(buffer);
      }
      return u8view;
    };
    const dv = () => {
      u8();
      return dview;
    };
    const bytes = (p: number, n: number) => Uint8Array.prototype.slice.call(u8(), p, p + n);
    const str = (p: number, n: number) => u8().toString("utf8", p, p + n);
    const record = (fn: string, key?: string, map?: number) => {
      self.calls.total++;
      if (!self.calls.recording) return;
      const c: HostCall = { fn, callback: self.callback, context: self.effective };
      if (key !== undefined) c.key = key;
      if (map !== undefined) c.map = map;
      self.calls.calls.push(c);
    };
    // Hands a value to the module as Envoy does: in memory from the module's malloc, owned by
    // it; an empty value as a null pointer and size 0.
    const out = (ptrPtr: number, sizePtr: number, p: number, n: number) => {
      const d = dv();
      d.setUint32(ptrPtr, p, true);
      d.setUint32(sizePtr, n, true);
      return Status.Ok;
    };
    const give = (value: Uint8Array, ptrPtr: number, sizePtr: number) => {
      if (value.length === 0) return out(ptrPtr, sizePtr, 0, 0);
      const p = self.exp.malloc(value.length) >>> 0;
      u8().set(value, p);
      return out(ptrPtr, sizePtr, p, value.length);
    };
    const giveString = (value: string, ptrPtr: number, sizePtr: number) => {
      const n = Buffer.byteLength(value);
      if (n === 0) return out(ptrPtr, sizePtr, 0, 0);
      const p = self.exp.malloc(n) >>> 0;
      u8().write(value, p);
      return out(ptrPtr, sizePtr, p, n);
    };
    const giveValue = (value: Value, ptrPtr: number, sizePtr: number) => {
      if (typeof value === "string") return giveString(value, ptrPtr, sizePtr);
      if (typeof value === "bigint" || typeof value === "number") {
        const p = self.exp.malloc(8) >>> 0;
        dv().setBigInt64(p, BigInt(value), true);
        return out(ptrPtr, sizePtr, p, 8);
      }
      return give(serializeValue(value), ptrPtr, sizePtr);
    };
    // The pairs encoding written straight into the module's memory (one malloc).
    const givePairs = (pairs: Array<[string, string]>, ptrPtr: number, sizePtr: number) => {
      if (pairs.length === 0) return out(ptrPtr, sizePtr, 0, 0);
      let size = 4 + pairs.length * 8;
      const lengths = new Array<number>(pairs.length * 2);
      for (let i = 0; i < pairs.length; i++) {
        lengths[2 * i] = Buffer.byteLength(pairs[i][0]);
        lengths[2 * i + 1] = Buffer.byteLength(pairs[i][1]);
        size += lengths[2 * i] + lengths[2 * i + 1] + 2;
      }
      const p = self.exp.malloc(size) >>> 0;
      const m = u8();
      const d = dview;
      d.setUint32(p, pairs.length, true);
      let at = p + 4 + pairs.length * 8;
      for (let i = 0; i < pairs.length; i++) {
        d.setUint32(p + 4 + i * 8, lengths[2 * i], true);
        d.setUint32(p + 8 + i * 8, lengths[2 * i + 1], true);
        m.write(pairs[i][0], at);
        at += lengths[2 * i];
        m[at++] = 0;
        m.write(pairs[i][1], at);
        at += lengths[2 * i + 1];
        m[at++] = 0;
      }
      return out(ptrPtr, sizePtr, p, size);
    };
    const map = (t: number) => {
      const s = self.contexts.get(self.effective)!;
      let m = s.maps.get(t);
      if (!m) s.maps.set(t, (m = []));
      return m;
    };
    const headerWrite = (op: HeaderWrite["op"], map: number, key: string, value?: string) => {
      const w: HeaderWrite = { op, map, key, context: self.effective };
      if (value !== undefined) w.value = value;
      self.headerWrites.push(w);
    };

    const env: Record<string, Function> = {
      proxy_log(level: number, p: number, n: number) {
        record("log");
        const message = str(p, n);
        self.logs.push({ level, message });
        if (self.echoLog) process.stderr.write(`[vm ${self.rootId}] ${message}\n`);
        return Status.Ok;
      },
      proxy_get_log_level(p: number) {
        record("get_log_level");
        dv().setUint32(p, 2, true);
        return Status.Ok;
      },
      proxy_get_current_time_nanoseconds(p: number) {
        record("get_current_time_nanoseconds");
        dv().setBigUint64(p, self.nowNs, true);
        return Status.Ok;
      },
      proxy_set_tick_period_milliseconds(ms: number) {
        record("set_tick_period_milliseconds");
        self.tickPeriodMs = ms;
        return Status.Ok;
      },
      proxy_set_effective_context(context: number) {
        record("set_effective_context", String(context));
        if (!self.contexts.has(context)) return Status.BadArgument;
        self.effective = context;
        return Status.Ok;
      },
      proxy_get_buffer_bytes(type: number, start: number, max: number, pp: number, sp: number) {
        record("get_buffer_bytes");
        const b = self.contexts.get(self.effective)?.buffers.get(type) ?? self.contexts.get(ROOT_CONTEXT)!.buffers.get(type);
        if (b === undefined) return Status.NotFound;
        return give(b.subarray(start, start + max), pp, sp);
      },
      proxy_get_buffer_status(type: number, lp: number, fp: number) {
        record("get_buffer_status");
        const b = self.contexts.get(self.effective)?.buffers.get(type);
        if (b === undefined) return Status.NotFound;
        dv().setUint32(lp, b.length, true);
        dv().setUint32(fp, 0, true);
        return Status.Ok;
      },
      proxy_get_property(p: number, n: number, pp: number, sp: number) {
        const raw = str(p, n);
        record("get_property", self.calls.recording ? raw.replaceAll("\0", ".") : undefined);
        const path = raw.split("\0");
        const v = self.property(path);
        if (v === undefined) return Status.NotFound;
        return giveValue(v, pp, sp);
      },
      proxy_set_property(p: number, n: number, vp: number, vn: number) {
        const path = str(p, n).split("\0");
        record("set_property", path.join("."));
        setProperty(self.contexts.get(self.effective)!.properties, path, bytes(vp, vn));
        return Status.Ok;
      },
      proxy_get_header_map_pairs(t: number, pp: number, sp: number) {
        record("get_header_map_pairs", undefined, t);
        return givePairs(map(t), pp, sp);
      },
      proxy_get_header_map_size(t: number, sp: number) {
        record("get_header_map_size", undefined, t);
        dv().setUint32(sp, map(t).reduce((s, [k, v]) => s + k.length + v.length, 0), true);
        return Status.Ok;
      },
      proxy_get_header_map_value(t: number, kp: number, kn: number, pp: number, sp: number) {
        const key = str(kp, kn);
        record("get_header_map_value", key, t);
        const e = map(t).find(([k]) => k === key.toLowerCase());
        return e ? giveString(e[1], pp, sp) : Status.NotFound;
      },
      proxy_replace_header_map_value(t: number, kp: number, kn: number, vp: number, vn: number) {
        const key = str(kp, kn).toLowerCase();
        const value = str(vp, vn);
        record("replace_header_map_value", key, t);
        // As Envoy: the first entry takes the value, any repeats of the key go.
        const m = map(t);
        let at = -1;
        for (let i = 0; i < m.length; i++) {
          if (m[i][0] !== key) continue;
          if (at < 0) {
            at = i;
            m[i] = [key, value];
          } else {
            m.splice(i--, 1);
          }
        }
        if (at < 0) m.push([key, value]);
        headerWrite("replace", t, key, value);
        return Status.Ok;
      },
      proxy_add_header_map_value(t: number, kp: number, kn: number, vp: number, vn: number) {
        const key = str(kp, kn).toLowerCase();
        const value = str(vp, vn);
        record("add_header_map_value", key, t);
        map(t).push([key, value]);
        headerWrite("add", t, key, value);
        return Status.Ok;
      },
      proxy_remove_header_map_value(t: number, kp: number, kn: number) {
        const key = str(kp, kn).toLowerCase();
        record("remove_header_map_value", key, t);
        const m = map(t);
        for (let i = m.length - 1; i >= 0; i--) if (m[i][0] === key) m.splice(i, 1);
        headerWrite("remove", t, key);
        return Status.Ok;
      },
      proxy_set_header_map_pairs(t: number, p: number, n: number) {
        record("set_header_map_pairs", undefined, t);
        const m = map(t);
        m.splice(0, m.length, ...deserializePairs(bytes(p, n)).map(([k, v]) => [k.toLowerCase(), v] as [string, string]));
        return Status.Ok;
      },
      proxy_define_metric(type: number, p: number, n: number, idp: number) {
        const encoded = str(p, n);
        record("define_metric", encoded);
        if (type < 0 || type > 2) return Status.BadArgument;
        // As Envoy: the type in the low two bits; every define a new id, even for a known name.
        const id = (self.nextMetric++ << 2) | type;
        self.metrics.set(id, { id, type: MetricTypeName[type], encoded, ...decodeMetricName(encoded), value: 0n, samples: [] });
        dv().setUint32(idp, id, true);
        return Status.Ok;
      },
      proxy_increment_metric(id: number, delta: bigint) {
        const m = self.metrics.get(id);
        record("increment_metric", self.calls.recording ? m?.name ?? `#${id}` : undefined);
        if (!m) return Status.NotFound;
        if (m.type === "histogram" || (m.type === "counter" && delta <= 0n)) return Status.BadArgument;
        m.value += delta;
        return Status.Ok;
      },
      proxy_record_metric(id: number, value: bigint) {
        const m = self.metrics.get(id);
        record("record_metric", self.calls.recording ? m?.name ?? `#${id}` : undefined);
        if (!m) return Status.NotFound;
        const v = BigInt.asUintN(64, value);
        if (m.type === "counter") m.value += v;
        else if (m.type === "gauge") m.value = v;
        else {
          m.samples.push(v);
          m.value += v;
        }
        return Status.Ok;
      },
      proxy_get_metric(id: number, p: number) {
        const m = self.metrics.get(id);
        record("get_metric", self.calls.recording ? m?.name ?? `#${id}` : undefined);
        if (!m) return Status.NotFound;
        if (m.type === "histogram") return Status.BadArgument;
        dv().setBigUint64(p, m.value, true);
        return Status.Ok;
      },
      proxy_http_call(up: number, un: number, hp: number, hn: number, bp: number, bn: number, tp: number, tn: number, timeout: number, idp: number) {
        record("http_call", str(up, un));
        const headers = deserializePairs(bytes(hp, hn));
        const has = (k: string) => headers.some(([h]) => h === k);
        if (!has(":authority") || !has(":method") || !has(":path")) return Status.BadArgument;
        const id = self.nextCall++;
        self.httpCalls.push({ id, upstream: str(up, un), headers, body: str(bp, bn), trailers: deserializePairs(bytes(tp, tn)), timeoutMs: timeout, context: self.effective });
        dv().setUint32(idp, id, true);
        return Status.Ok;
      },
      proxy_call_foreign_function(np: number, nn: number, ap: number, an: number, pp: number, sp: number) {
        const name = str(np, nn);
        record("call_foreign_function", name);
        if (!self.cel || !["expr_create", "expr_evaluate", "expr_delete"].includes(name)) return Status.NotFound;
        if (name === "expr_create") {
          const token = self.nextExpression++;
          self.expressions.set(token, parseCel(str(ap, an)));
          const b = new Uint8Array(4);
          new DataView(b.buffer).setUint32(0, token, true);
          return give(b, pp, sp);
        }
        const expression = an === 4 ? self.expressions.get(dv().getUint32(ap, true)) : undefined;
        if (expression === undefined) return Status.NotFound;
        if (name === "expr_delete") {
          self.expressions.delete(dv().getUint32(ap, true));
          return Status.Ok;
        }
        const evaluate = (item: CelItem): Value | undefined => {
          const v = self.property(item.path);
          return v !== undefined ? v : item.fallback;
        };
        if (!Array.isArray(expression)) {
          const v = evaluate(expression);
          return v === undefined ? Status.NotFound : giveValue(v, pp, sp);
        }
        // Envoy 1.40 serializes a list like a header map: each element's own serialization as
        // the key, an empty value (shared/reference/proxywasm_envoy_oci.md §2.1).
        const values = expression.map(evaluate);
        if (values.some((v) => v === undefined)) return Status.NotFound;
        return give(serializePairs(values.map((v) => [serializeValue(v!), new Uint8Array(0)] as const)), pp, sp);
      },
      proxy_continue_stream() {
        record("continue_stream");
        return Status.Ok;
      },
      proxy_done() {
        record("done");
        return Status.Ok;
      },
    };
    const wasi: Record<string, Function> = {
      random_get(p: number, n: number) {
        record("wasi.random_get");
        const m = u8();
        for (let i = 0; i < n; i++) m[p + i] = (self.random() * 256) | 0;
        return 0;
      },
      environ_sizes_get(cp: number, sp: number) {
        record("wasi.environ_sizes_get");
        const entries = Object.entries(self.env).map(([k, v]) => enc.encode(`${k}=${v}\0`));
        dv().setUint32(cp, entries.length, true);
        dv().setUint32(sp, entries.reduce((s, e) => s + e.length, 0), true);
        return 0;
      },
      environ_get(pointers: number, buffer: number) {
        record("wasi.environ_get");
        let at = buffer;
        Object.entries(self.env).forEach(([k, v], i) => {
          const e = enc.encode(`${k}=${v}\0`);
          dv().setUint32(pointers + i * 4, at, true);
          u8().set(e, at);
          at += e.length;
        });
        return 0;
      },
      clock_time_get(_id: number, _precision: bigint, p: number) {
        record("wasi.clock_time_get");
        dv().setBigUint64(p, self.nowNs, true);
        return 0;
      },
      fd_write(fd: number, iovs: number, n: number, written: number) {
        record("wasi.fd_write");
        let text = "";
        let total = 0;
        for (let i = 0; i < n; i++) {
          const p = dv().getUint32(iovs + i * 8, true);
          const len = dv().getUint32(iovs + i * 8 + 4, true);
          text += str(p, len);
          total += len;
        }
        self.logs.push({ level: fd === 2 ? 4 : 2, message: text });
        dv().setUint32(written, total, true);
        return 0;
      },
      proc_exit(code: number) {
        throw new Error(`proc_exit(${code})`);
      },
    };
    const probe = {
      called(index: number) {
        const name = self.probes[index] ?? `#${index}`;
        self.probeCounts.set(name, (self.probeCounts.get(name) ?? 0) + 1);
      },
    };
    const table: WebAssembly.Imports = { env: {}, wasi_snapshot_preview1: {} };
    for (const imp of WebAssembly.Module.imports(this.module)) {
      if (imp.kind !== "function") continue;
      const known: Record<string, Function> =
        imp.module === "env" ? env : imp.module === "wasi_snapshot_preview1" || imp.module === "wasi_unstable" ? wasi : imp.module === "mesh_test" ? probe : {};
      (table[imp.module] ??= {})[imp.name] =
        known[imp.name] ??
        (imp.module === "env" && imp.name === "abort"
          ? () => {
              throw new Error("abort called by the module (a trap)");
            }
          : () => {
              throw new Error(`test host: ${imp.module}.${imp.name} is not implemented`);
            });
    }
    return table;
  }
}

/** One attribute of a CEL expression the host understands: `path` or `has(path) ? path : literal`. */
interface CelItem {
  path: string[];
  fallback?: Value;
}

/**
 * The CEL subset the plugin compiles: an attribute path, `has(p) ? p : literal` (literal: a
 * string in single or double quotes, an integer, true or false), or a list of those in [...].
 * Anything else throws, so a test never passes on an expression this host does not evaluate.
 */
export function parseCel(text: string): CelItem[] | CelItem {
  const t = text.trim();
  const item = (s: string): CelItem => {
    const e = s.trim();
    const path = /^[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*$/;
    if (path.test(e)) return { path: e.split(".") };
    const m = /^has\(([^)]+)\)\s*\?\s*([^:]+?)\s*:\s*(.+)$/.exec(e);
    if (!m || m[1].trim() !== m[2].trim() || !path.test(m[1].trim())) throw new Error(`test host: CEL expression not understood: ${e}`);
    const lit = m[3].trim();
    let fallback: Value;
    if (/^'.*'$|^".*"$/.test(lit)) fallback = lit.slice(1, -1);
    else if (/^-?\d+$/.test(lit)) fallback = BigInt(lit);
    else if (lit === "true" || lit === "false") fallback = lit === "true";
    else throw new Error(`test host: CEL literal not understood: ${lit}`);
    return { path: m[1].trim().split("."), fallback };
  };
  if (t.startsWith("[") && t.endsWith("]")) {
    // Split on top-level commas (literals here hold no commas or brackets).
    return t.slice(1, -1).split(",").map(item);
  }
  return item(t);
}

function toText(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

// A small deterministic PRNG, so sampling draws and ids repeat from run to run.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Streams.

abstract class StreamBase {
  /** Kept after proxy_on_delete, so a test can look at the headers as they left. */
  protected readonly own: ContextState;

  constructor(
    readonly vm: ProxyWasmVm,
    readonly id: number,
  ) {
    this.own = vm.state(id);
  }

  /** This stream's own attributes (e.g. response.flags); set before the callback that reads them. */
  get properties(): Properties {
    return this.own.properties;
  }

  /** Sets one of this stream's attributes; null makes it absent here, undefined falls back to the VM's. */
  set(path: string | string[], value: Value | null | undefined): this {
    setProperty(this.properties, path, value);
    return this;
  }

  /** proxy_on_log */
  log(): void {
    this.vm.call("on_log", this.id);
  }

  /** proxy_on_delete; the context is gone afterwards. */
  delete(): void {
    this.vm.call("on_delete", this.id);
    this.vm.dropContext(this.id);
  }
}

export class HttpStream extends StreamBase {
  /** Request headers as they left the filter (after proxy_on_request_headers). */
  get request(): Array<[string, string]> {
    return this.own.maps.get(MapType.RequestHeaders) ?? [];
  }

  /** Response headers as they left the filter. */
  get response(): Array<[string, string]> {
    return this.own.maps.get(MapType.ResponseHeaders) ?? [];
  }

  header(name: string, map: number = MapType.RequestHeaders): string | undefined {
    return this.own.maps.get(map)?.find(([k]) => k === name)?.[1];
  }

  /**
   * Sets the request headers without running the callback: a request answered before it
   * reached this filter, whose headers Envoy still shows the filter when it logs the stream.
   */
  withRequestHeaders(headers: Array<[string, string]>): this {
    this.own.maps.set(MapType.RequestHeaders, headers.map(([k, v]) => [k.toLowerCase(), v]));
    return this;
  }

  requestHeaders(headers: Array<[string, string]>, endOfStream = true): number {
    this.own.maps.set(MapType.RequestHeaders, headers.map(([k, v]) => [k.toLowerCase(), v]));
    return this.vm.call("on_request_headers", this.id, headers.length, endOfStream ? 1 : 0);
  }

  /**
   * proxy_on_response_headers. Unless the stream set response.code itself, its :status becomes
   * the response.code attribute, as Envoy reports the code it sent downstream.
   */
  responseHeaders(headers: Array<[string, string]>, endOfStream = false): number {
    this.own.maps.set(MapType.ResponseHeaders, headers.map(([k, v]) => [k.toLowerCase(), v]));
    const status = headers.find(([k]) => k === ":status")?.[1];
    const response = this.own.properties.response;
    const own = response !== null && typeof response === "object" && !Array.isArray(response) && !(response instanceof Uint8Array) && !(response instanceof Double) ? response : undefined;
    if (status !== undefined && /^\d{3}$/.test(status) && own?.code === undefined) this.set(["response", "code"], BigInt(status));
    return this.vm.call("on_response_headers", this.id, headers.length, endOfStream ? 1 : 0);
  }
}

export class TcpConnection extends StreamBase {
  newConnection(): number {
    return this.vm.call("on_new_connection", this.id);
  }

  downstreamData(bytes: number, endOfStream = false): number {
    this.own.buffers.set(BufferType.DownstreamData, new Uint8Array(bytes));
    return this.vm.call("on_downstream_data", this.id, bytes, endOfStream ? 1 : 0);
  }

  upstreamData(bytes: number, endOfStream = false): number {
    this.own.buffers.set(BufferType.UpstreamData, new Uint8Array(bytes));
    return this.vm.call("on_upstream_data", this.id, bytes, endOfStream ? 1 : 0);
  }

  /** Both sides close (peer type 2, remote), then the connection is logged and deleted. */
  close(): void {
    this.vm.call("on_downstream_connection_close", this.id, 2);
    this.vm.call("on_upstream_connection_close", this.id, 2);
    this.log();
    this.delete();
  }
}
