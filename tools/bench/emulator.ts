// A small proxy-wasm host in Node for the plugin's hot path: one client (outbound) and one
// server (inbound) VM run the same request pairs Envoy would give them, with Istio-shaped node
// metadata and cluster metadata, and the metadata exchange passed between them. Node runs the
// module in V8, the engine Envoy uses, so time inside the VM and the VM's memory growth per
// request can be studied here in seconds, with `node --cpu-prof` for a profile. It measures
// the VM only: host calls return at once, so their price in Envoy comes from `make bench`.
//
//   node --import tsx tools/bench/emulator.ts [module.wasm] [--against other.wasm] [--requests N] [--trace PCT]
import { readFileSync } from "node:fs";
import { Session } from "node:inspector";
import { fileURLToPath } from "node:url";

const enc = new TextEncoder();
const dec = new TextDecoder();

type Value = string | bigint | Uint8Array;

export interface EmulatedSide {
  rootId: string;
  config: unknown;
  /** Attribute path (dot-joined) to value; a bigint is served as 8 bytes little-endian. */
  properties: Map<string, Value>;
}

export class EmulatedVm {
  readonly instance: WebAssembly.Instance;
  private mem!: WebAssembly.Memory;
  private exp: any;
  /** Header maps by proxy-wasm map type. */
  maps: Map<number, Array<[string, string]>> = new Map();
  hostCalls = 0;
  expressions: string[][] = [];
  private nextId = 1;
  private readonly rootContext = 1;
  private nextContext = 2;

  constructor(module: WebAssembly.Module, readonly side: EmulatedSide) {
    const self = this;
    const u8 = () => new Uint8Array(self.mem.buffer);
    const dv = () => new DataView(self.mem.buffer);
    const str = (p: number, n: number) => dec.decode(u8().subarray(p, p + n));
    const give = (bytes: Uint8Array, ptrPtr: number, sizePtr: number) => {
      const p = self.exp.malloc(bytes.length) >>> 0;
      u8().set(bytes, p);
      dv().setUint32(ptrPtr, p, true);
      dv().setUint32(sizePtr, bytes.length, true);
      return 0;
    };
    const count = <T extends (...a: any[]) => number>(f: T): T => ((...a: any[]) => { self.hostCalls++; return f(...a); }) as T;
    const env: Record<string, Function> = {
      proxy_log: (_level: number, p: number, n: number) => { process.stderr.write(`[vm ${side.rootId}] ${str(p, n)}\n`); return 0; },
      proxy_get_buffer_bytes: count((type: number, _start: number, _len: number, pp: number, sp: number) => {
        if (type === 7) return give(enc.encode(JSON.stringify(side.config)), pp, sp);
        return give(new Uint8Array(0), pp, sp);
      }),
      proxy_get_property: count((p: number, n: number, pp: number, sp: number) => {
        const path = str(p, n).split("\0").filter((s) => s.length > 0).join(".");
        const v = side.properties.get(path);
        if (v === undefined) return 1;
        if (typeof v === "bigint") {
          const b = new Uint8Array(8);
          new DataView(b.buffer).setBigInt64(0, v, true);
          return give(b, pp, sp);
        }
        return give(typeof v === "string" ? enc.encode(v) : v, pp, sp);
      }),
      proxy_set_effective_context: () => 0,
      proxy_define_metric: (_t: number, _p: number, _n: number, idp: number) => { dv().setUint32(idp, self.nextId++, true); return 0; },
      proxy_set_tick_period_milliseconds: () => 0,
      proxy_record_metric: count(() => 0),
      proxy_increment_metric: count(() => 0),
      proxy_get_header_map_value: count((t: number, kp: number, kn: number, pp: number, sp: number) => {
        const key = str(kp, kn);
        const e = (self.maps.get(t) ?? []).find(([k]) => k === key);
        return e ? give(enc.encode(e[1]), pp, sp) : 1;
      }),
      proxy_get_header_map_pairs: count((t: number, pp: number, sp: number) => give(serializePairs(self.maps.get(t) ?? []), pp, sp)),
      proxy_replace_header_map_value: count((t: number, kp: number, kn: number, vp: number, vn: number) => {
        const key = str(kp, kn);
        const list = (self.maps.get(t) ?? []).filter(([k]) => k !== key);
        list.push([key, str(vp, vn)]);
        self.maps.set(t, list);
        return 0;
      }),
      proxy_remove_header_map_value: count((t: number, kp: number, kn: number) => {
        const key = str(kp, kn);
        self.maps.set(t, (self.maps.get(t) ?? []).filter(([k]) => k !== key));
        return 0;
      }),
      proxy_http_call: count((..._a: number[]) => { dv().setUint32(_a[9], 1, true); return 0; }),
      proxy_get_log_level: (p: number) => { dv().setUint32(p, 3, true); return 0; },
      // Envoy's CEL foreign functions, for the plugin's list-of-attributes expressions: each
      // element an attribute path, answered from the properties in Envoy 1.40's pairs
      // serialization; a missing attribute fails the whole list, as in Envoy.
      proxy_call_foreign_function: count((np: number, nn: number, ap: number, an: number, pp: number, sp: number) => {
        const name = str(np, nn);
        if (name === "expr_create") {
          const text = str(ap, an).trim();
          if (!text.startsWith("[") || !text.endsWith("]")) return 2;
          self.expressions.push(text.slice(1, -1).split(",").map((e) => e.trim()));
          const token = new Uint8Array(4);
          new DataView(token.buffer).setUint32(0, self.expressions.length - 1, true);
          return give(token, pp, sp);
        }
        if (name === "expr_evaluate") {
          const paths = self.expressions[dv().getUint32(ap, true)];
          if (!paths) return 1;
          const values: Uint8Array[] = [];
          for (const path of paths) {
            const v = side.properties.get(path);
            if (v === undefined) return 10; // InternalFailure: no such attribute
            if (typeof v === "bigint") {
              const b = new Uint8Array(8);
              new DataView(b.buffer).setBigInt64(0, v, true);
              values.push(b);
            } else values.push(typeof v === "string" ? enc.encode(v) : v);
          }
          return give(serializePairs(values.map((v) => [v, new Uint8Array(0)] as [Uint8Array, Uint8Array])), pp, sp);
        }
        return 1;
      }),
    };
    const wasi = {
      proc_exit: (code: number) => { throw new Error(`proc_exit(${code})`); },
      random_get: (p: number, n: number) => { for (let i = 0; i < n; i++) u8()[p + i] = (Math.random() * 256) | 0; return 0; },
      environ_sizes_get: (a: number, b: number) => { dv().setUint32(a, 0, true); dv().setUint32(b, 0, true); return 0; },
      environ_get: () => 0,
    };
    const imports: WebAssembly.Imports = { env: {}, wasi_snapshot_preview1: wasi };
    for (const imp of WebAssembly.Module.imports(module)) {
      if (imp.module === "env" && !(imp.name in env)) env[imp.name] = () => { throw new Error(`emulator: ${imp.name} not emulated`); };
    }
    imports.env = env as any;
    this.instance = new WebAssembly.Instance(module, imports);
    this.exp = this.instance.exports;
    this.mem = this.exp.memory;
    this.exp._initialize?.();
    const rootId = enc.encode(side.rootId);
    this.exp.proxy_on_context_create(this.rootContext, 0);
    // The root id reaches the plugin as the plugin_root_id attribute.
    side.properties.set("plugin_root_id", side.rootId);
    void rootId;
    const config = enc.encode(JSON.stringify(side.config));
    if (!this.exp.proxy_on_configure(this.rootContext, config.length)) throw new Error(`${side.rootId}: configuration refused`);
  }

  get memoryBytes(): number {
    return this.mem.buffer.byteLength;
  }

  /** One HTTP stream: request headers in, response headers in, log, delete. Returns the request as forwarded. */
  stream(request: Array<[string, string]>, response: Array<[string, string]>, onForward?: (req: Array<[string, string]>) => Array<[string, string]>): { forwarded: Array<[string, string]>; returned: Array<[string, string]> } {
    const id = this.nextContext++;
    this.exp.proxy_on_context_create(id, this.rootContext);
    this.maps.set(0, request.slice());
    this.exp.proxy_on_request_headers(id, request.length, 1);
    const forwarded = this.maps.get(0)!;
    const answer = onForward ? onForward(forwarded) : response;
    this.maps.set(2, answer.slice());
    this.exp.proxy_on_response_headers(id, answer.length, 0);
    const returned = this.maps.get(2)!;
    this.exp.proxy_on_log(id);
    this.exp.proxy_on_delete(id);
    return { forwarded, returned };
  }
}

function serializePairs(pairs: Array<[string | Uint8Array, string | Uint8Array]>): Uint8Array {
  const bytes = (x: string | Uint8Array) => (typeof x === "string" ? enc.encode(x) : x);
  const parts = pairs.map(([k, v]) => [bytes(k), bytes(v)] as const);
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

function nodeProperties(workload: string, app: string, version: string, namespace: string): Map<string, Value> {
  const m = new Map<string, Value>();
  const md = "xds.node.metadata";
  m.set(`${md}.NAME`, `${workload}-5d7f9c-abcde`);
  m.set(`${md}.NAMESPACE`, namespace);
  m.set(`${md}.WORKLOAD_NAME`, workload);
  m.set(`${md}.CLUSTER_ID`, "Kubernetes");
  m.set(`${md}.OWNER`, `kubernetes://apis/apps/v1/namespaces/${namespace}/deployments/${workload}`);
  m.set(`${md}.LABELS.app`, app);
  m.set(`${md}.LABELS.version`, version);
  m.set(`${md}.LABELS.service.istio.io/canonical-name`, app);
  m.set(`${md}.LABELS.service.istio.io/canonical-revision`, version);
  m.set("xds.node.id", `sidecar~10.0.0.1~${workload}-5d7f9c-abcde.${namespace}~${namespace}.svc.cluster.local`);
  return m;
}

/** The per-request attributes both sides serve (a 200 with a 1 KiB body, as in the benchmark). */
function requestProperties(m: Map<string, Value>, cluster: string): void {
  m.set("xds.cluster_name", cluster);
  m.set("xds.route_name", "default");
  m.set("xds.cluster_metadata.filter_metadata.istio.services.0.host", "reviews.default.svc.cluster.local");
  m.set("xds.cluster_metadata.filter_metadata.istio.services.0.name", "reviews");
  m.set("xds.cluster_metadata.filter_metadata.istio.services.0.namespace", "default");
  m.set("response.code", 200n);
  m.set("response.flags", 0n);
  m.set("request.duration", 1_250_000n);
  m.set("request.time", BigInt(Date.now()) * 1_000_000n);
  m.set("request.total_size", 180n);
  m.set("response.total_size", 1150n);
  m.set("connection.id", 7n);
  m.set("source.address", "10.0.0.1:41234");
  m.set("upstream.address", "10.0.0.2:9080");
}

export interface EmulatorResult {
  module: string;
  requests: number;
  /** Microseconds per request of the VMs' own work (client + server), host calls excluded. */
  vmOwnUsPerRequest: number;
  hostCallsPerRequest: { client: number; server: number };
  memoryBytes: { client: number; server: number };
}

/** A client and a server VM of one module, wired as the benchmark's sidecar pair. */
class EmulatedPair {
  readonly client: EmulatedVm;
  readonly server: EmulatedVm;
  private readonly request: Array<[string, string]> = [
    [":authority", "reviews:9080"], [":path", "/reviews/1"], [":method", "GET"], [":scheme", "http"],
    ["user-agent", "h2load nghttp2/1.52.0"], ["accept", "*/*"], ["x-request-id", "7c2b3e1a-52f4-4a43-9d0e-3f1c9b8a6d21"],
  ];
  private readonly response: Array<[string, string]> = [[":status", "200"], ["content-type", "text/plain"], ["content-length", "1024"]];

  constructor(wasmPath: string, tracePercent: number | null) {
    const module = new WebAssembly.Module(readFileSync(wasmPath));
    const tracing = tracePercent === null ? { tracing: { enabled: false } } : { tracing: { random_sampling_percentage: tracePercent, zipkin: { cluster: "zipkin" } } };
    const clientProps = nodeProperties("productpage-v1", "productpage", "v1", "default");
    requestProperties(clientProps, "outbound|9080||reviews.default.svc.cluster.local");
    const serverProps = nodeProperties("reviews-v1", "reviews", "v1", "default");
    requestProperties(serverProps, "inbound|9080||");
    this.client = new EmulatedVm(module, { rootId: "stats_outbound", config: { reporter: "UNSPECIFIED", ...tracing }, properties: clientProps });
    this.server = new EmulatedVm(module, { rootId: "stats_inbound", config: { reporter: "UNSPECIFIED", disable_host_header_fallback: true, ...tracing }, properties: serverProps });
  }

  one(): void {
    this.client.stream(this.request, this.response, (forwarded) => this.server.stream(forwarded, this.response).returned);
  }

  run(requests: number): void {
    for (let i = 0; i < requests; i++) this.one();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Emulates each module's sidecar pair; the modules take turns in rounds of `requests / rounds`
 * requests (so a busy machine slows them alike). The VM's own time is measured by V8's sampling
 * profiler: the self time of each module's Wasm functions (each module has its own wasm://
 * script), so neither the emulated host nor any timing code is counted, and nothing is added
 * per call. Per round, then the median over the rounds.
 */
export async function emulate(wasmPaths: string[], requests: number, tracePercent: number | null, rounds = 10): Promise<EmulatorResult[]> {
  const pairs = wasmPaths.map((p) => new EmulatedPair(p, tracePercent));
  for (const p of pairs) p.run(2000); // warm-up: V8 tiers up, caches fill
  const per = Math.max(1, Math.floor(requests / rounds));
  const own: number[][] = pairs.map(() => []);
  const calls = pairs.map((p) => [p.client.hostCalls, p.server.hostCalls]);
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<any>((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: 50 });
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < pairs.length; i++) {
      await post("Profiler.start");
      pairs[i].run(per);
      const { profile } = await post("Profiler.stop");
      own[i].push((wasmSelfMs(profile) * 1000) / per);
    }
  }
  session.disconnect();
  return pairs.map((p, i) => ({
    module: wasmPaths[i],
    requests: per * rounds,
    vmOwnUsPerRequest: median(own[i]),
    hostCallsPerRequest: { client: (p.client.hostCalls - calls[i][0]) / (per * rounds), server: (p.server.hostCalls - calls[i][1]) / (per * rounds) },
    memoryBytes: { client: p.client.memoryBytes, server: p.server.memoryBytes },
  }));
}

// Milliseconds of samples whose top frame is a Wasm function.
function wasmSelfMs(profile: any): number {
  const wasm = new Set<number>();
  for (const n of profile.nodes) if (String(n.callFrame.url).startsWith("wasm://")) wasm.add(n.id);
  let us = 0;
  for (let i = 0; i < profile.samples.length; i++) if (wasm.has(profile.samples[i])) us += profile.timeDeltas[i] ?? 0;
  return us / 1000;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name: string) => { const i = args.indexOf(name); return i >= 0 ? args.splice(i, 2)[1] : undefined; };
  const requests = Number(opt("--requests") ?? 50000);
  const trace = opt("--trace");
  const against = opt("--against");
  const wasm = args[0] ?? "build/plugin.wasm";
  const results = await emulate(against ? [wasm, against] : [wasm], requests, trace === undefined ? null : Number(trace));
  for (const r of results) console.log(JSON.stringify(r));
  if (results.length == 2) {
    console.log(`VM's own time per request pair: ${results[0].vmOwnUsPerRequest.toFixed(2)} us against ${results[1].vmOwnUsPerRequest.toFixed(2)} us: ${(results[0].vmOwnUsPerRequest / results[1].vmOwnUsPerRequest).toFixed(3)} of it`);
  }
}
