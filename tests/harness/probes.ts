// Probes: how often the VM ran one of the plugin's own functions, for behaviour no host call
// shows (a peer decoded once per id, then served from the cache). The module is the plugin
// built unoptimised with names (nothing inlined), and binaryen (probe-build.mjs) puts a call to
// an imported counter at the start of each probed function; the test host (proxywasm.ts,
// option `probes`) counts them. Both builds are cached in build/test/ and redone when
// assembly/ changes. The release module is never touched.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./proxywasm.ts";

const NAMED_WASM = join(ROOT, "build/test/plugin-named.wasm");

function newestSource(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** The plugin built with names and without optimisation, rebuilt when assembly/ changed. */
export function namedModulePath(): string {
  const stale = !existsSync(NAMED_WASM) || statSync(NAMED_WASM).mtimeMs < Math.max(newestSource(join(ROOT, "assembly")), statSync(join(ROOT, "asconfig.json")).mtimeMs);
  if (stale) {
    mkdirSync(join(ROOT, "build/test"), { recursive: true });
    const r = spawnSync("npx", ["--no-install", "asc", "assembly/index.ts", "--target", "release", "--optimizeLevel", "0", "--shrinkLevel", "0", "--debug", "--outFile", NAMED_WASM], { cwd: ROOT, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`asc (named build for probes) failed:\n${r.stdout}${r.stderr}`);
  }
  return NAMED_WASM;
}

export interface ProbedModule {
  module: WebAssembly.Module;
  /** Probe index -> function name, as the host's `probes` option wants them. */
  probes: string[];
}

/**
 * The named plugin with a counter call at the entry of each of `functions` (internal names
 * such as "assembly/peer/struct/decodeStruct"). Throws when one is missing, so a rename
 * fails the test instead of silently counting nothing.
 */
export function probedModule(functions: string[]): ProbedModule {
  const named = namedModulePath();
  const script = join(ROOT, "tests/harness/probe-build.mjs");
  const out = join(ROOT, "build/test", `probed-${createHash("sha256").update(functions.join("\n")).digest("hex").slice(0, 12)}.wasm`);
  if (!existsSync(out) || statSync(out).mtimeMs < Math.max(statSync(named).mtimeMs, statSync(script).mtimeMs)) {
    const r = spawnSync(process.execPath, [script, named, out, ...functions], { cwd: ROOT, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`probe-build failed: ${r.stderr}`);
  }
  return { module: new WebAssembly.Module(readFileSync(out)), probes: functions };
}
