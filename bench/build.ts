// Modules the benchmark builds besides the release plugin, all with the release options:
// asconfig.json's `release` target and shared options, then wasm-opt with the Makefile's flags.
// The empty filter (bench/empty-filter/index.ts) goes to build/bench/empty-filter.wasm.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync, statSync, existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../tests/harness/envoy.ts";

export const BENCH_BUILD = join(ROOT, "build/bench");
const ASC = join(ROOT, "node_modules/.bin/asc");
const WASM_OPT = join(ROOT, "node_modules/.bin/wasm-opt");

/** asconfig.json's release target and options without its entries (asc would add them). */
function releaseConfig(): string {
  const config = JSON.parse(readFileSync(join(ROOT, "asconfig.json"), "utf8"));
  const release = { ...config.targets.release };
  delete release.outFile;
  delete release.textFile;
  mkdirSync(BENCH_BUILD, { recursive: true });
  const path = join(BENCH_BUILD, "asconfig.release.json");
  writeFileSync(path, JSON.stringify({ targets: { release }, options: config.options }, null, 2));
  return path;
}

/** The Makefile's WASM_FEATURES and the flags of its build/plugin.wasm rule. */
function wasmOptFlags(): string[] {
  const makefile = readFileSync(join(ROOT, "Makefile"), "utf8");
  const m = /^WASM_FEATURES\s*:=\s*((?:.*\\\n)*.*)$/m.exec(makefile);
  const features = m ? m[1].replace(/\\\n/g, " ").split(/\s+/).filter(Boolean) : [];
  return [...features, "-Os", "--strip-debug", "--strip-producers"];
}

function run(cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

/**
 * Compiles `entry` with the release options into `outFile` (asc, then wasm-opt as `make build`
 * does). `cwd` decides where packages (the SDK) are resolved from.
 */
export function asc(entry: string, outFile: string, cwd = ROOT): void {
  const config = releaseConfig();
  const raw = outFile.replace(/\.wasm$/, ".asc.wasm");
  run(ASC, [entry, "--config", config, "--target", "release", "--outFile", raw], cwd);
  run(WASM_OPT, [raw, ...wasmOptFlags(), "-o", outFile], cwd);
}

function newer(output: string, inputs: string[]): boolean {
  if (!existsSync(output)) return false;
  const t = statSync(output).mtimeMs;
  return inputs.every((i) => statSync(i).mtimeMs < t);
}

/** build/bench/empty-filter.wasm, rebuilt when its source or the build options change. */
export function buildEmptyFilter(): string {
  const out = join(BENCH_BUILD, "empty-filter.wasm");
  const src = join(ROOT, "bench/empty-filter/index.ts");
  if (!newer(out, [src, join(ROOT, "asconfig.json"), join(ROOT, "Makefile")])) asc(src, out);
  return out;
}

/** build/bench/probe.wasm: the empty filter plus N host calls of one kind per request. */
export function buildProbe(): string {
  const out = join(BENCH_BUILD, "probe.wasm");
  const src = join(ROOT, "bench/empty-filter/probe.ts");
  if (!newer(out, [src, join(ROOT, "asconfig.json"), join(ROOT, "Makefile")])) asc(src, out);
  return out;
}
