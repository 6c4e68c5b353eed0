// Mutation fuzzer for the plugin's parsers and codecs. It compiles tests/fuzz/entry.ts (the pure
// modules behind a byte-buffer interface, with the release build's runtime options) to
// build/fuzz/fuzz.wasm, instantiates it in Node with a one-function host (env.abort), and feeds
// every target its seed corpus (tests/fuzz/corpus/<target>/), then mutations of it from a
// seeded generator, within a time and iteration bound. Not coverage-guided: an input whose
// outcome kind (the path the target reports, e.g. the refusal message) is new joins the pool.
//
// A Wasm trap, an abort, an invariant the target reports, or an input slower than --slow-ms is
// a failure: the input is saved to build/fuzz-crashes/<target>-<hash>.bin (with a minimized
// copy and a .txt describing it) and the run fails.
//
//   node --import tsx tools/fuzz.ts [--seconds 300] [--seed 1] [--targets config,trace]
//                                   [--iterations N] [--max-len 4096] [--slow-ms 2000]
//   node --import tsx tools/fuzz.ts --replay build/fuzz-crashes/<file>.bin --targets <target>
//
// Environment: FUZZ_SECONDS, FUZZ_SEED as defaults for --seconds and --seed; FUZZ_DUMP_KINDS=<prefix>
// writes each target's outcome kinds to <prefix>.<target>.txt. The slowest input of each target
// is kept in build/fuzz-slowest/<target>.bin, to look for super-linear paths below --slow-ms.
// Failures listed in tests/fuzz/known.json are reported as KNOWN and do not fail the run.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT } from "../tests/harness/envoy.ts";

export const TARGETS = ["json", "config", "expr", "base64", "struct", "peer", "trace", "label", "headers", "otlp"] as const;
export type Target = (typeof TARGETS)[number];

const FUZZ_WASM = join(ROOT, "build/fuzz/fuzz.wasm");
const CRASH_DIR = join(ROOT, "build/fuzz-crashes");
const CORPUS_DIR = join(ROOT, "tests/fuzz/corpus");

// ---------------------------------------------------------------------------------------------
// Build

function sourcesOf(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourcesOf(p));
    else if (entry.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Compiles the fuzz entry when it or any plugin source is newer than the module. */
export function buildFuzzModule(): string {
  const inputs = [join(ROOT, "tests/fuzz/entry.ts"), join(ROOT, "tests/fuzz/asconfig.json"), ...sourcesOf(join(ROOT, "assembly"))];
  const newest = Math.max(...inputs.map((p) => statSync(p).mtimeMs));
  if (existsSync(FUZZ_WASM) && statSync(FUZZ_WASM).mtimeMs >= newest) return FUZZ_WASM;
  mkdirSync(join(ROOT, "build/fuzz"), { recursive: true });
  // --config keeps the project's asconfig.json (entry: the plugin) out of this build.
  const run = spawnSync("npx", ["--no-install", "asc", "tests/fuzz/entry.ts", "--config", "tests/fuzz/asconfig.json", "-o", FUZZ_WASM], {
    cwd: ROOT,
    encoding: "utf8",
  });
  if (run.status !== 0) throw new Error(`asc tests/fuzz/entry.ts failed:\n${run.stdout}\n${run.stderr}`);
  return FUZZ_WASM;
}

// ---------------------------------------------------------------------------------------------
// The module in Node

export interface Outcome {
  /** ok: returned 0; invariant: returned 1; trap: WebAssembly.RuntimeError; abort: env.abort. */
  status: "ok" | "invariant" | "trap" | "abort";
  /** The target's outcome kind (ok), its message (invariant), or the error text. */
  message: string;
  stack?: string;
  ms: number;
}

class AbortCalled extends Error {}

class FuzzModule {
  private exports!: any;
  private runs = 0;

  constructor(private readonly module: WebAssembly.Module) {
    this.instantiate();
  }

  private instantiate(): void {
    let self: FuzzModule = this;
    const instance = new WebAssembly.Instance(this.module, {
      env: {
        abort: (msg: number, file: number, line: number, col: number) => {
          throw new AbortCalled(`abort: ${self.string(msg)} at ${self.string(file)}:${line}:${col}`);
        },
      },
    });
    this.exports = instance.exports;
    this.exports._initialize();
  }

  /** An AssemblyScript string (UTF-16, byte length in the header before it). */
  private string(ptr: number): string {
    ptr >>>= 0;
    if (!ptr) return "null";
    const mem = this.exports.memory.buffer as ArrayBuffer;
    const len = new Uint32Array(mem, ptr - 4, 1)[0];
    return Buffer.from(mem, ptr, len).toString("utf16le");
  }

  get memoryBytes(): number {
    return (this.exports.memory.buffer as ArrayBuffer).byteLength;
  }

  run(target: Target, data: Uint8Array): Outcome {
    const started = performance.now();
    try {
      const ptr = (this.exports.input(data.length) as number) >>> 0;
      new Uint8Array(this.exports.memory.buffer, ptr, data.length).set(data);
      const code = this.exports[`fuzz_${target}`]() as number;
      const mptr = (this.exports.message() as number) >>> 0;
      const mlen = this.exports.messageLength() as number;
      const message = Buffer.from(this.exports.memory.buffer, mptr, mlen).toString("utf8");
      // The plugin collects at the end of streams; so do we, every few inputs.
      if (++this.runs % 8 === 0) this.exports.__collect();
      return { status: code === 0 ? "ok" : "invariant", message, ms: performance.now() - started };
    } catch (err) {
      const ms = performance.now() - started;
      // The instance may be mid-allocation: start over with a fresh one.
      this.instantiate();
      if (err instanceof AbortCalled) return { status: "abort", message: err.message, stack: err.stack, ms };
      if (err instanceof WebAssembly.RuntimeError) return { status: "trap", message: `trap: ${err.message}`, stack: err.stack, ms };
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Mutation

/** mulberry32: small, seeded, good enough to pick mutations. */
class Rng {
  constructor(private state: number) {}
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

const COMMON_TOKENS = ["\u0000", "\uFFFD", "\u00ff", "\ud83d\ude00", "\r\n", " ", "\t", "-", ",", "=", ";", ".", "'", '"', "\\", "0", "-1", "1e309"];
const INVALID_UTF8 = [Buffer.from([0xff]), Buffer.from([0xc0, 0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from([0xe2, 0x82])];

const DICTIONARY: Record<Target, string[]> = {
  json: ["{", "}", "[", "]", ":", ",", '"', "\\u0000", "\\ud800", "\\uDFFF", "true", "false", "null", "-0", "1e-400", "1E+400", "0.0000001", "[[[[[[[[", "]]]]]]]]", '"a":', "9007199254740993"],
  config: [
    '"reporter": ', '"source"', '"SERVER_GATEWAY"', '"max_series": ', "1000000", "1000001", "0", "1.5", '"tcp_reporting_duration": ', '"100ms"', '"1h"', '"0.1s"', '"99ms"',
    '"metrics": [', '{"name": "requests_total", ', '"dimensions": {', '"tags_to_remove": [', '"drop": true', '"definitions": [', '"value": ', '"type": "HISTOGRAM"',
    "\"request.headers['x-user']\"", '"response.code"', "\"node.metadata['NAME'] | 'x'\"", '"disable_host_header_fallback": ', '"debug": "false"', '"stat_prefix": "istio"',
    '"user": ', '"d": ', '"destination_service": ', '"response_flags"', '"requests_total"', '"request_bytes"', '"tcp_sent_bytes_total"',
  ],
  expr: [
    "request.headers['x-user']", "response.code", "request.host", "connection.mtls", "upstream.address", "xds.cluster_name", "node.metadata['NAME']", "node.metadata['LABELS']['app']",
    "node.metadata.ODD", " | ", " || ", " && ", "!", " == ", " != ", " < ", " >= ", "(", ")", "[", "]", "'", '"', "\\x41", "\\u00e9", "\\U0010ffff", "\\777", "string(", "int(", "has(", "size(",
    ".startsWith('a')", ".endsWith(", ".contains(", ".size()", "true", "false", "null", "-9223372036854775808", "9223372036854775808", "((((((((", "))))))))", "\u0000",
  ],
  base64: ["A", "Q", "/", "+", "=", "==", "===", "AAAA", "////", "-_", " ", "\n", "%3D"],
  struct: ["\x0a", "\x12", "\x1a", "\x2a", "\x32", "\x08", "\x11", "\x20", "\x80", "\xff\xff\xff\xff\x0f", "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", "\x0b", "\x0c", "\x0e", "\x0f"],
  peer: ["A", "=", "==", "ChoK", "CgYK", "KgA", "MgA", "\u0000sidecar~10.0.0.1~x.default~default.svc.cluster.local", "\u0000"],
  trace: [
    "00-", "-01", "-00", "ff-", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "00000000000000000000000000000000", "0000000000000000", "-d", "-1-", "true", "false",
    "congo=t61rcWkgMzE", "@", "a*b/c-d_e", "=", ",,,", "\u0000", "X", "f".repeat(33), "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
  ],
  label: ["=.=", ";.;", ".", "=", ";", "\n", "\u007f", "\u0001", "\uFFFD", "=.", ".=", ";.", ".;", "==", ";;"],
  headers: ["\x00\x00\x00\x00", "\x01\x00\x00\x00", "\xff\xff\xff\xff", "\x02\x00\x00\x00", "b3\x00", "traceparent\x00", ":authority\x00", "x-envoy-peer-metadata\x00", "a\x00", "\x00"],
  otlp: ["\x0a", "\x08", "\x12", "\x0b", "\x21", "\x2d", "\x80", "\xff\xff\xff\xff\x0f", "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", "\x00", ":", "?", "[::1]:", "\ud800", "\udc00"],
};

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x22, 0x27, 0x2c, 0x2d, 0x2e, 0x3a, 0x3b, 0x3d, 0x5b, 0x5c, 0x5d, 0x7b, 0x7d];

function mutate(rng: Rng, input: Uint8Array, pool: Uint8Array[], target: Target, maxLen: number): Uint8Array {
  let b = Buffer.from(input);
  const steps = 1 + rng.int(rng.next() < 0.8 ? 4 : 16);
  for (let s = 0; s < steps; s++) {
    const at = b.length === 0 ? 0 : rng.int(b.length + 1);
    switch (rng.int(13)) {
      case 0: // flip a bit
        if (b.length) b[rng.int(b.length)] ^= 1 << rng.int(8);
        break;
      case 1: // set a byte
        if (b.length) b[rng.int(b.length)] = rng.next() < 0.5 ? rng.pick(INTERESTING_BYTES) : rng.int(256);
        break;
      case 2: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + rng.int(8) }, () => rng.int(256))), b.subarray(at)]);
        break;
      case 3: // delete a range
        if (b.length) b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(16)))]);
        break;
      case 4: // duplicate a range
        if (b.length) {
          const from = rng.int(b.length);
          const chunk = b.subarray(from, Math.min(b.length, from + 1 + rng.int(32)));
          b = Buffer.concat([b.subarray(0, at), chunk, b.subarray(at)]);
        }
        break;
      case 5: // repeat a range many times (nesting, long values)
        if (b.length) {
          const from = rng.int(b.length);
          const chunk = b.subarray(from, Math.min(b.length, from + 1 + rng.int(4)));
          const times = rng.pick([16, 64, 100, 1000]);
          b = Buffer.concat([b.subarray(0, at), Buffer.concat(Array(times).fill(chunk)), b.subarray(at)]);
        }
        break;
      case 6:
      case 7: // a dictionary token
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.pick(DICTIONARY[target]), "latin1"), b.subarray(at)]);
        break;
      case 8: // a common token (UTF-8)
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.pick(COMMON_TOKENS), "utf8"), b.subarray(at)]);
        break;
      case 9: // invalid UTF-8
        b = Buffer.concat([b.subarray(0, at), rng.pick(INVALID_UTF8), b.subarray(at)]);
        break;
      case 10: // splice with another pool entry
        {
          const other = rng.pick(pool);
          const from = rng.int(other.length + 1);
          b = Buffer.concat([b.subarray(0, at), Buffer.from(other.subarray(from, from + rng.int(64))), b.subarray(at)]);
        }
        break;
      case 11: // truncate
        b = b.subarray(0, at);
        break;
      case 12: // swap two bytes
        if (b.length > 1) {
          const i = rng.int(b.length);
          const j = rng.int(b.length);
          [b[i], b[j]] = [b[j], b[i]];
        }
        break;
    }
  }
  return b.length > maxLen ? b.subarray(0, maxLen) : b;
}

// ---------------------------------------------------------------------------------------------
// Corpus and crashes

export function loadCorpus(target: Target): Array<{ name: string; data: Uint8Array }> {
  const dir = join(CORPUS_DIR, target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((name) => ({ name, data: new Uint8Array(readFileSync(join(dir, name))) }));
}

function failing(o: Outcome, slowMs: number): boolean {
  return o.status !== "ok" || o.ms > slowMs;
}

/**
 * The path an outcome message names, without the input-dependent parts: field names (which
 * hold any text the input put in a key), quoted text and numbers.
 */
function kindOf(message: string): string {
  let m = message;
  if (m.startsWith("field '")) {
    const rest = /'( \(offset \d+\))?: (?!.*' \(offset \d+\): )/.exec(m);
    m = "field: " + (rest ? m.slice(rest.index + rest[0].length) : "");
  }
  return m.replace(/'[^']*'/g, "'_'").replace(/U\+[0-9A-F]+/g, "U+X").replace(/\d+/g, "N").slice(0, 100);
}

function signature(o: Outcome): string {
  return o.status + ":" + kindOf(o.message);
}

/** Shrinks a failing input while it still fails the same way (bounded in time). */
function minimize(fm: FuzzModule, target: Target, data: Uint8Array, sig: string, budgetMs: number): Uint8Array {
  const deadline = Date.now() + budgetMs;
  let best = data;
  for (let chunk = Math.max(1, best.length >> 1); chunk >= 1 && Date.now() < deadline; chunk >>= 1) {
    for (let at = 0; at < best.length && Date.now() < deadline; ) {
      const candidate = Buffer.concat([best.subarray(0, at), best.subarray(at + chunk)]);
      const o = fm.run(target, candidate);
      if (o.status !== "ok" && signature(o) === sig) best = candidate;
      else at += chunk;
    }
  }
  return best;
}

export interface Crash {
  target: Target;
  file: string;
  minimized: string;
  outcome: Outcome;
  /** Set when the failure matches an entry of tests/fuzz/known.json (reported, pending a fix). */
  known?: string;
}

export interface KnownFailure {
  target: Target;
  /** A substring of the failure message. */
  message: string;
  /** The regression input that reproduces it (relative to the repository). */
  input: string;
  reason: string;
}

export function knownFailures(): KnownFailure[] {
  const file = join(ROOT, "tests/fuzz/known.json");
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")).known as KnownFailure[]) : [];
}

function saveCrash(fm: FuzzModule, target: Target, data: Uint8Array, o: Outcome, seed: number, iteration: number, slowMs: number): Crash {
  mkdirSync(CRASH_DIR, { recursive: true });
  const hash = createHash("sha1").update(data).digest("hex").slice(0, 12);
  const file = join(CRASH_DIR, `${target}-${hash}.bin`);
  writeFileSync(file, data);
  const small = o.ms > slowMs && o.status === "ok" ? data : minimize(fm, target, data, signature(o), 3000);
  const minimized = join(CRASH_DIR, `${target}-${hash}.min.bin`);
  writeFileSync(minimized, small);
  const what = o.status === "ok" ? `slow: ${o.ms.toFixed(0)} ms (limit ${slowMs} ms)` : o.message;
  writeFileSync(
    join(CRASH_DIR, `${target}-${hash}.txt`),
    [
      `target: ${target}`,
      `failure: ${what}`,
      `seed: ${seed}, iteration: ${iteration}, input: ${data.length} bytes, minimized: ${small.length} bytes`,
      `replay: node --import tsx tools/fuzz.ts --replay ${relative(ROOT, minimized)} --targets ${target}`,
      `minimized (JSON string): ${JSON.stringify(Buffer.from(small).toString("latin1")).slice(0, 2000)}`,
      "",
      o.stack ?? "",
    ].join("\n"),
  );
  return { target, file, minimized, outcome: { ...o, message: what } };
}

// ---------------------------------------------------------------------------------------------
// The run

export interface FuzzOptions {
  seconds: number;
  seed: number;
  targets: Target[];
  iterations?: number;
  maxLen: number;
  slowMs: number;
  /** Called every few seconds with a progress line. */
  progress?: (line: string) => void;
  /** Stop a target after this many distinct failures. */
  maxCrashes?: number;
  /** A module built earlier by buildFuzzModule (default: build now if stale). */
  wasm?: string;
}

export interface TargetReport {
  target: Target;
  iterations: number;
  corpus: number;
  pool: number;
  kinds: number;
  slowestMs: number;
  memoryBytes: number;
  crashes: Crash[];
}

export function runFuzz(opts: FuzzOptions): TargetReport[] {
  const module = new WebAssembly.Module(readFileSync(opts.wasm ?? buildFuzzModule()));
  const reports: TargetReport[] = [];
  const perTargetMs = (opts.seconds * 1000) / opts.targets.length;
  let lastProgress = Date.now();
  const known = knownFailures();
  for (const [index, target] of opts.targets.entries()) {
    const fm = new FuzzModule(module);
    const rng = new Rng((opts.seed * 1000003 + index * 7919) | 0);
    const corpus = loadCorpus(target);
    const pool: Uint8Array[] = corpus.map((c) => c.data);
    if (pool.length === 0) pool.push(new Uint8Array(0));
    const kinds = new Set<string>();
    const seen = new Set<string>();
    const report: TargetReport = { target, iterations: 0, corpus: corpus.length, pool: 0, kinds: 0, slowestMs: 0, memoryBytes: 0, crashes: [] };
    const deadline = Date.now() + perTargetMs;
    let slowest: Uint8Array | null = null;
    const consider = (data: Uint8Array, o: Outcome, iteration: number) => {
      if (o.ms > report.slowestMs) {
        report.slowestMs = o.ms;
        slowest = data;
      }
      if (failing(o, opts.slowMs)) {
        const sig = signature(o);
        if (!seen.has(sig)) {
          seen.add(sig);
          const crash = saveCrash(fm, target, data, o, opts.seed, iteration, opts.slowMs);
          crash.known = known.find((k) => k.target === target && crash.outcome.message.includes(k.message))?.reason;
          report.crashes.push(crash);
        }
        return;
      }
      const kind = kindOf(o.message);
      if (!kinds.has(kind)) {
        kinds.add(kind);
        if (iteration > 0) {
          // A bounded pool: past 2048 inputs a new one replaces a random mutant.
          if (pool.length < 2048) pool.push(data);
          else pool[corpus.length + rng.int(pool.length - corpus.length)] = data;
        }
      }
    };
    // Every seed first (the regression part), then mutations until the bound.
    for (const c of corpus) consider(c.data, fm.run(target, c.data), 0);
    for (let i = 1; ; i++) {
      if (opts.iterations !== undefined && i > opts.iterations) break;
      if (opts.iterations === undefined && Date.now() >= deadline) break;
      if (report.crashes.filter((c) => !c.known).length >= (opts.maxCrashes ?? 5)) break;
      const parent = rng.pick(pool);
      const maxLen = Math.max(opts.maxLen, parent.length);
      const data = mutate(rng, parent, pool, target, maxLen);
      consider(data, fm.run(target, data), i);
      report.iterations = i;
      if (opts.progress && Date.now() - lastProgress > 5000) {
        lastProgress = Date.now();
        opts.progress(`  ${target}: ${i} inputs, ${pool.length} in pool, ${kinds.size} outcome kinds, ${report.crashes.length} failures`);
      }
    }
    report.pool = pool.length;
    report.kinds = kinds.size;
    // The slowest input, to look for super-linear paths below the failure threshold.
    if (slowest) {
      mkdirSync(join(ROOT, "build/fuzz-slowest"), { recursive: true });
      writeFileSync(join(ROOT, "build/fuzz-slowest", `${target}.bin`), slowest);
    }
    if (process.env.FUZZ_DUMP_KINDS) writeFileSync(`${process.env.FUZZ_DUMP_KINDS}.${target}.txt`, [...kinds].join("\n"));
    report.memoryBytes = fm.memoryBytes;
    reports.push(report);
  }
  return reports;
}

export function replay(file: string, target: Target, wasm?: string): Outcome {
  const module = new WebAssembly.Module(readFileSync(wasm ?? buildFuzzModule()));
  return new FuzzModule(module).run(target, new Uint8Array(readFileSync(file)));
}

// ---------------------------------------------------------------------------------------------
// CLI

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function parseTargets(text: string | undefined): Target[] {
  if (!text) return [...TARGETS];
  const list = text.split(",").map((t) => t.trim()) as Target[];
  for (const t of list) if (!TARGETS.includes(t)) throw new Error(`unknown target '${t}' (known: ${TARGETS.join(", ")})`);
  return list;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const targets = parseTargets(arg("targets"));
  const replayFile = arg("replay");
  if (replayFile) {
    for (const t of targets) {
      const o = replay(replayFile, t);
      console.log(`${t}: ${o.status} ${o.message} (${o.ms.toFixed(1)} ms)${o.stack ? "\n" + o.stack : ""}`);
    }
    process.exit(0);
  }
  const opts: FuzzOptions = {
    seconds: Number(arg("seconds") ?? process.env.FUZZ_SECONDS ?? 300),
    seed: Number(arg("seed") ?? process.env.FUZZ_SEED ?? 1),
    targets,
    iterations: arg("iterations") ? Number(arg("iterations")) : undefined,
    maxLen: Number(arg("max-len") ?? 4096),
    slowMs: Number(arg("slow-ms") ?? 2000),
    progress: (line) => console.log(line),
  };
  console.log(`== fuzz: ${opts.targets.join(", ")}; seed ${opts.seed}; ${opts.iterations ? `${opts.iterations} inputs` : `${opts.seconds} s`} per run`);
  const started = Date.now();
  const reports = runFuzz(opts);
  let failures = 0;
  for (const r of reports) {
    console.log(
      `${r.target.padEnd(7)} ${String(r.iterations).padStart(8)} inputs  corpus ${r.corpus}  pool ${r.pool}  kinds ${r.kinds}  slowest ${r.slowestMs.toFixed(1)} ms  memory ${(r.memoryBytes / 1024).toFixed(0)} KiB  failures ${r.crashes.length}`,
    );
    for (const c of r.crashes) {
      console.log(`   ${c.known ? "KNOWN" : "FAIL"} ${c.outcome.message}\n        saved ${relative(ROOT, c.file)} (minimized: ${basename(c.minimized)})`);
      if (c.known) console.log(`        ${c.known}`);
    }
    failures += r.crashes.filter((c) => !c.known).length;
  }
  const knownCount = reports.reduce((n, r) => n + r.crashes.filter((c) => c.known).length, 0);
  console.log(`== fuzz done in ${((Date.now() - started) / 1000).toFixed(1)} s: ${failures} failure(s)${knownCount ? `, ${knownCount} known (tests/fuzz/known.json)` : ""}`);
  process.exit(failures === 0 ? 0 : 1);
}
