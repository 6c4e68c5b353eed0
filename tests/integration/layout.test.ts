// The repository's layout rules (docs/architecture.md, "Repository map"), checked on the
// TypeScript import graph: tests reach tools/ only through tests/harness/tools.ts, the harness
// and tools/ never depend on bench/, and no module imports itself through a circle.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { ROOT } from "../harness/envoy.ts";

const SKIP = new Set(["node_modules", "build", ".cache", ".git", "empty-filter", "fuzz", "trap-filter"]);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name) || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (/\.(ts|mts|mjs)$/.test(name)) out.push(path);
  }
  return out;
}

/** Each Node-side module (not assembly/) and the modules it imports by relative path. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const top of ["tools", "tests", "bench"]) {
    for (const file of sources(join(ROOT, top))) {
      const text = readFileSync(file, "utf8");
      const targets: string[] = [];
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/g)) {
        targets.push(relative(ROOT, resolve(dirname(file), m[1])));
      }
      graph.set(relative(ROOT, file), targets);
    }
  }
  return graph;
}

const graph = importGraph();

test("the import graph was read (the check below has modules to look at)", () => {
  assert.ok(graph.size > 100, `only ${graph.size} modules found`);
  assert.ok(graph.get("tests/harness/tools.ts")!.some((t) => t.startsWith("tools/")), "tests/harness/tools.ts imports no tool");
});

test("tests import tools/ only through tests/harness/", () => {
  const bad: string[] = [];
  for (const [file, targets] of graph) {
    if (!file.startsWith("tests/") || file.startsWith("tests/harness/")) continue;
    for (const t of targets) if (t.startsWith("tools/") || t.startsWith("bench/")) bad.push(`${file} -> ${t}`);
  }
  assert.deepEqual(bad, []);
});

test("nothing outside bench/ depends on the benchmark", () => {
  const bad: string[] = [];
  for (const [file, targets] of graph) {
    if (file.startsWith("bench/")) continue;
    for (const t of targets) if (t.startsWith("bench/")) bad.push(`${file} -> ${t}`);
  }
  assert.deepEqual(bad, []);
});

test("the harness reaches into tools/ only through tools.ts", () => {
  const bad: string[] = [];
  for (const [file, targets] of graph) {
    if (!file.startsWith("tests/harness/") || file === "tests/harness/tools.ts") continue;
    for (const t of targets) if (t.startsWith("tools/")) bad.push(`${file} -> ${t}`);
  }
  assert.deepEqual(bad, []);
});

test("no import circles", () => {
  const state = new Map<string, "open" | "done">();
  const circles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") {
      circles.push([...path.slice(path.indexOf(file)), file].join(" -> "));
      return;
    }
    state.set(file, "open");
    for (const t of graph.get(file) ?? []) if (graph.has(t)) visit(t, [...path, file]);
    state.set(file, "done");
  };
  for (const file of graph.keys()) visit(file, []);
  assert.deepEqual(circles, []);
});
