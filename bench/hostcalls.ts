// Host-call accounting for the hot path: builds a VARIANT of the plugin that counts and times
// every call it makes to the host, per proxy-wasm callback, and logs the running totals.
// Nothing here touches assembly/ or the release build: the sources and the SDK are copied into
// build/bench/hostcalls/ and the COPY is rewritten:
//
//   - every `@external(module, name) declare function f(...)` (the SDK's imports.ts, and any
//     direct import in assembly/) becomes `__host_f`, and `f` becomes a wrapper that counts
//     the call under the callback that is running and times it with Envoy's clock; calls that
//     name a key (get_property's path, a header name) are also counted and timed per key;
//   - every exported `proxy_on_*` callback is wrapped the same way, so the time spent inside
//     the VM per callback is known, host calls included;
//   - every REPORT_EVERY streams (proxy_on_delete) the totals go to Envoy's log as one line
//     `hostcalls {json}`, through a raw proxy_log that is neither counted nor timed.
//
// Times are wall-clock nanoseconds from proxy_get_current_time_nanoseconds, less the measured
// cost of reading the clock; the wrappers themselves cost a little, so this variant answers
// "how many calls, and which ones are expensive", not "how fast is the plugin".
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT } from "../tests/harness/envoy.ts";
import { asc } from "./build.ts";

const REPORT_EVERY = 1000;

/** Calls whose (ptr, size) argument at this position is a key worth naming in the detail. */
const KEY_ARGUMENT: Record<string, number> = {
  proxy_get_property: 0,
  proxy_set_property: 0,
  proxy_get_header_map_value: 1,
  proxy_add_header_map_value: 1,
  proxy_replace_header_map_value: 1,
  proxy_remove_header_map_value: 1,
};

const EXTERNAL = /@external\("([\w.]+)",\s*"(\w+)"\)((?:\s*\/\/[^\n]*)*)\s*(export\s+)?declare\s+function\s+(\w+)\s*\(([^)]*)\)\s*:\s*([\w<>]+)\s*;/g;
const CALLBACK = /export function (proxy_on_\w+)\s*\(([^)]*)\)\s*(?::\s*([\w<>]+)\s*)?\{/g;

function walk(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (path.endsWith(".ts")) out.push(path);
  }
  return out;
}

function importPath(from: string, to: string): string {
  let p = relative(dirname(from), to).replace(/\.ts$/, "");
  if (!p.startsWith(".")) p = "./" + p;
  return p;
}

function paramNames(params: string): string[] {
  return params
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
    .map((p) => p.split(":")[0].trim());
}

/**
 * Builds the counting variant of the plugin whose sources are under `sourceRoot` (its
 * assembly/ and node_modules/@solo-io/proxy-runtime) into `outFile`.
 */
export function buildCountingModule(sourceRoot: string, outFile: string): void {
  // Rebuilt only when the sources, the SDK, the build options or this generator change.
  const hash = createHash("sha256");
  const sdkFiles = walk(join(sourceRoot, "node_modules/@solo-io/proxy-runtime/assembly"));
  for (const f of [...walk(join(sourceRoot, "assembly")), ...sdkFiles, join(ROOT, "asconfig.json"), fileURLToPath(import.meta.url)].sort()) {
    hash.update(f).update(readFileSync(f));
  }
  const digest = hash.digest("hex");
  const stamp = `${outFile}.sources`;
  if (existsSync(outFile) && existsSync(stamp) && readFileSync(stamp, "utf8") === digest) return;
  const dir = join(ROOT, "build/bench", basename(outFile, ".wasm"));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(sourceRoot, "assembly"), join(dir, "assembly"), { recursive: true });
  const sdk = join(dir, "node_modules/@solo-io/proxy-runtime");
  cpSync(join(sourceRoot, "node_modules/@solo-io/proxy-runtime"), sdk, { recursive: true, dereference: true });
  const counter = join(dir, "hostcount.ts");

  const imports: string[] = [];
  const callbacks: string[] = ["(start)"];
  const files = [...walk(join(dir, "assembly")), ...walk(join(sdk, "assembly"))];
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    let changed = false;
    let out = text.replace(EXTERNAL, (_m, module: string, name: string, comments: string, exported: string | undefined, ident: string, params: string, ret: string) => {
      changed = true;
      let index = imports.indexOf(`${module}.${name}`);
      if (index < 0) index = imports.push(`${module}.${name}`) - 1;
      const names = paramNames(params);
      const keyAt = module === "env" ? KEY_ARGUMENT[name] : undefined;
      const done =
        keyAt === undefined
          ? `__hc_done(${index}, __t);`
          : `__hc_done_key(${index}, __t, ${names[keyAt]}, ${names[keyAt + 1]}, ${keyAt === 0 ? "-1" : `<i32>${names[0]}`});`;
      const call = `__host_${ident}(${names.join(", ")})`;
      const body = ret === "void" ? `${call}; ${done}` : `const __r = ${call}; ${done} return __r;`;
      return (
        `@external("${module}", "${name}")${comments}\nexport declare function __host_${ident}(${params}): ${ret};\n` +
        `${exported ?? ""}function ${ident}(${params}): ${ret} { const __t = __hc_now(); ${body} }`
      );
    });
    out = out.replace(CALLBACK, (_m, name: string, params: string, ret: string | undefined) => {
      changed = true;
      let index = callbacks.indexOf(name);
      if (index < 0) index = callbacks.push(name) - 1;
      const type = ret ?? "void";
      const call = `__inner_${name}(${paramNames(params).join(", ")})`;
      const body = type === "void" ? `${call}; __hc_exit(__c, __t);` : `const __r = ${call}; __hc_exit(__c, __t); return __r;`;
      return `export function ${name}(${params}): ${type} { const __c = __hc_enter(${index}); const __t = __hc_now(); ${body} }\nfunction __inner_${name}(${params}): ${type} {`;
    });
    if (changed) writeFileSync(file, `import { __hc_now, __hc_done, __hc_done_key, __hc_enter, __hc_exit } from "${importPath(file, counter)}";\n${out}`);
  }
  const del = callbacks.indexOf("proxy_on_delete");
  if (!imports.includes("env.proxy_log") || del < 0) throw new Error("hostcalls: SDK has no proxy_log import or proxy_on_delete export");
  writeFileSync(counter, counterModule(imports, callbacks, del));
  asc(join(dir, "assembly/index.ts"), outFile, dir);
  writeFileSync(stamp, digest);
}

function counterModule(imports: string[], callbacks: string[], deleteIndex: number): string {
  return `// Generated by bench/hostcalls.ts: host-call counters and timers of the counting variant.
// @ts-ignore: decorator
@external("env", "proxy_log")
declare function __hc_log(level: u32, message: usize, size: usize): u32;
// @ts-ignore: decorator
@external("env", "proxy_get_current_time_nanoseconds")
declare function __hc_clock(out: usize): u32;

// Only plain data at the top level: a managed global's initializer would pull in abort()
// (the SDK's abort_proc_exit) while the SDK file that imports this one is still compiling.
const IMPORT_NAMES = "${imports.join(",")}";
const CALLBACK_NAMES = "${callbacks.join(",")}";
const NI = ${imports.length};
const NC = ${callbacks.length};
// Per (callback, import): count, nanoseconds. Per callback: entries, nanoseconds.
const COUNTS = memory.data(16 * NI * NC);
const CALLS = memory.data(16 * NC);
const CLOCK = memory.data(8);
let detail: Map<u64, StaticArray<u64>> | null = null;
let keyNames: Map<u64, string> = changetype<Map<u64, string>>(0);
let current: i32 = 0;
let streams: u64 = 0;
let clockCost: u64 = 0;

function add(at: usize, count: u64, ns: u64): void {
  store<u64>(at, load<u64>(at) + count);
  store<u64>(at, load<u64>(at, 8) + ns, 8);
}

export function __hc_now(): u64 {
  __hc_clock(CLOCK);
  return load<u64>(CLOCK);
}

function since(t0: u64): u64 {
  const d = __hc_now() - t0;
  return d > clockCost ? d - clockCost : 0;
}

export function __hc_enter(callback: i32): i32 {
  const outer = current;
  current = callback;
  if (callback == ${deleteIndex}) {
    streams++;
    if (streams % ${REPORT_EVERY} == 0) report();
  }
  return outer;
}

export function __hc_exit(outer: i32, t0: u64): void {
  add(CALLS + 16 * <usize>current, 1, since(t0));
  current = outer;
}

export function __hc_done(index: i32, t0: u64): void {
  add(COUNTS + 16 * <usize>(current * NI + index), 1, since(t0));
}

// Keys are the plugin's constant buffers, so (callback, call, pointer, size) identifies one
// without decoding it on the hot path; the text is decoded once, on first sight.
export function __hc_done_key(index: i32, t0: u64, ptr: usize, size: usize, map: i32): void {
  const ns = since(t0);
  add(COUNTS + 16 * <usize>(current * NI + index), 1, ns);
  let d = detail;
  if (d === null) {
    d = new Map<u64, StaticArray<u64>>();
    detail = d;
    keyNames = new Map<u64, string>();
  }
  let id: u64 = (<u64>current << 56) | (<u64>index << 48) | (<u64>(map + 1) << 44) | ((<u64>size & 0xfff) << 32) | <u64>ptr;
  if (!d.has(id)) {
    if (d.size >= 512) id = (<u64>current << 56) | (<u64>index << 48) | 0xfffffffffff;
    if (!d.has(id)) {
      d.set(id, new StaticArray<u64>(2));
      let key = (id & 0xfffffffffff) == 0xfffffffffff ? "(other keys)" : String.UTF8.decodeUnsafe(ptr, size).replaceAll("\\0", ".").replaceAll("\\"", "'").replaceAll("\\\\", "/");
      if (map >= 0) key = "map" + map.toString() + " " + key;
      keyNames.set(id, CALLBACK_NAMES.split(",")[current] + " " + IMPORT_NAMES.split(",")[index] + " " + key);
    }
  }
  const v = d.get(id);
  v[0] += 1;
  v[1] += ns;
}

// The cost of one clock read as the wrappers see it: the smallest of a few back-to-back pairs.
function calibrate(): void {
  let best: u64 = u64.MAX_VALUE;
  for (let i = 0; i < 50; i++) {
    const a = __hc_now();
    const b = __hc_now();
    if (b - a < best) best = b - a;
  }
  clockCost = best;
}

function pair(count: u64, ns: u64): string {
  return "[" + count.toString() + "," + ns.toString() + "]";
}

function report(): void {
  calibrate();
  const CALLBACKS = CALLBACK_NAMES.split(",");
  const IMPORTS = IMPORT_NAMES.split(",");
  let s = "hostcalls {\\"streams\\":" + streams.toString() + ",\\"clock_ns\\":" + clockCost.toString() + ",\\"callbacks\\":{";
  let first = true;
  for (let c = 0; c < NC; c++) {
    const at = CALLS + 16 * <usize>c;
    if (load<u64>(at) == 0) continue;
    s += (first ? "" : ",") + "\\"" + CALLBACKS[c] + "\\":" + pair(load<u64>(at), load<u64>(at, 8));
    first = false;
  }
  s += "},\\"counts\\":{";
  first = true;
  for (let c = 0; c < NC; c++) {
    for (let i = 0; i < NI; i++) {
      const at = COUNTS + 16 * <usize>(c * NI + i);
      if (load<u64>(at) == 0) continue;
      s += (first ? "" : ",") + "\\"" + CALLBACKS[c] + " " + IMPORTS[i] + "\\":" + pair(load<u64>(at), load<u64>(at, 8));
      first = false;
    }
  }
  s += "},\\"detail\\":{";
  const d = detail;
  if (d !== null) {
    const keys = d.keys();
    for (let k = 0; k < keys.length; k++) {
      const v = d.get(keys[k]);
      s += (k == 0 ? "" : ",") + "\\"" + keyNames.get(keys[k]) + "\\":" + pair(v[0], v[1]);
    }
  }
  s += "}}";
  const bytes = String.UTF8.encode(s);
  __hc_log(2, changetype<usize>(bytes), bytes.byteLength);
}
`;
}

/** Cumulative [count, nanoseconds] per callback, per "callback import", per "callback import key". */
export interface HostCallReport {
  streams: number;
  clock_ns: number;
  callbacks: Record<string, [number, number]>;
  counts: Record<string, [number, number]>;
  detail: Record<string, [number, number]>;
}

/** Every `hostcalls {...}` line in an Envoy log, in order. */
export function parseReports(log: string): HostCallReport[] {
  const out: HostCallReport[] = [];
  for (const m of log.matchAll(/hostcalls (\{.*\})\s*$/gm)) out.push(JSON.parse(m[1]));
  return out;
}

/** Calls per stream and nanoseconds per call, between two cumulative reports. */
export interface PerStream {
  streams: number;
  /** name -> [calls per stream, ns per call] */
  callbacks: Record<string, [number, number]>;
  counts: Record<string, [number, number]>;
  detail: Record<string, [number, number]>;
}

export function perStream(a: HostCallReport, b: HostCallReport): PerStream {
  const n = b.streams - a.streams;
  const diff = (x: Record<string, [number, number]>, y: Record<string, [number, number]>) =>
    Object.fromEntries(
      Object.entries(y)
        .map(([k, [c, ns]]) => {
          const dc = c - (x[k]?.[0] ?? 0);
          const dns = ns - (x[k]?.[1] ?? 0);
          return [k, [dc / n, dc > 0 ? dns / dc : 0]] as [string, [number, number]];
        })
        .filter(([, [c]]) => c > 0.001),
    );
  return { streams: n, callbacks: diff(a.callbacks, b.callbacks), counts: diff(a.counts, b.counts), detail: diff(a.detail, b.detail) };
}
