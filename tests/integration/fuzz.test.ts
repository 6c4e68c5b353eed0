// The bounded fuzz run of `make test` (the long one is `make fuzz`): every parser and codec the
// plugin runs on configuration text or request headers, compiled with the release runtime
// options (tests/fuzz/entry.ts) and fed its seed corpus (tests/fuzz/corpus/) and then seeded
// mutations for a fixed share of QUICK_FUZZ_SECONDS (default 20 s in all; QUICK_FUZZ_SEED, default 1). A trap, an abort, a broken
// invariant or an input slower than 2 s fails the target and leaves the input in
// build/fuzz-crashes/ with a minimized copy and the command that replays it. Failures listed in
// tests/fuzz/known.json (reported, fix pending) are printed, not failed, and their regression
// inputs are replayed as `todo` tests below.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { relative } from "node:path";
import { buildFuzzModule, knownFailures, loadCorpus, replay, runFuzz, TARGETS, type Target } from "../harness/tools.ts";
import { ROOT } from "../harness/envoy.ts";

const SECONDS = Number(process.env.QUICK_FUZZ_SECONDS ?? 20);
const SEED = Number(process.env.QUICK_FUZZ_SEED ?? 1);

// Built once: the plugin's sources may change while the tests run (other work in the tree).
let wasm: string;
before(() => {
  wasm = buildFuzzModule();
});

for (const target of TARGETS) {
  test(`fuzz ${target}: seed corpus and ${(SECONDS / TARGETS.length).toFixed(1)} s of mutations, no trap, abort or broken invariant`, () => {
    assert.ok(loadCorpus(target).length > 0, `tests/fuzz/corpus/${target}/ has seeds`);
    const [report] = runFuzz({ seconds: SECONDS / TARGETS.length, seed: SEED, targets: [target as Target], maxLen: 4096, slowMs: 2000, wasm });
    for (const c of report.crashes.filter((x) => x.known)) console.log(`# known, pending fix: ${c.outcome.message} -> ${relative(ROOT, c.file)}`);
    const failures = report.crashes.filter((c) => !c.known).map((c) => `${c.outcome.message} -> ${relative(ROOT, c.file)}`);
    assert.deepEqual(failures, [], `${target}: ${report.iterations} inputs (seed ${SEED})`);
    assert.ok(report.iterations > 100, `${target}: only ${report.iterations} inputs ran`);
  });
}

// Per-request work must be linear in the header size: one request with a 60 KiB header must
// not hold a worker for seconds or exhaust the VM's memory. sanitizeLabelValue rebuilds the
// value one character at a time (`out += ...`) when it holds a separator dot or a control
// character, so its time and garbage grow with the square of the length: 16 KiB of "=.=" takes
// hundreds of milliseconds here, and 24 KiB through a real outbound listener (Host header,
// default config) traps the VM (out of memory) - see hostile-requests.test.ts.
test("label sanitizing is linear in the value length (16 KiB of separators within 50 ms)", () => {
  const file = `${ROOT}/tests/fuzz/regressions/label-quadratic-16k`;
  const o = replay(file, "label", wasm);
  assert.equal(o.status, "ok", o.message);
  assert.ok(o.ms < 50, `${o.ms.toFixed(0)} ms for 16 KiB`);
});

// Inputs that once broke a parser stay in the suite.
test("fuzz regression: the headers length-overflow input is refused without a trap", () => {
  const o = replay(`${ROOT}/tests/fuzz/regressions/headers-length-overflow.bin`, "headers", wasm);
  assert.equal(o.status, "ok", o.message);
});

for (const k of knownFailures()) {
  test(`fuzz regression ${k.input}: no longer fails`, { todo: k.reason }, () => {
    const o = replay(`${ROOT}/${k.input}`, k.target, wasm);
    assert.equal(o.status, "ok", o.message);
  });
}
