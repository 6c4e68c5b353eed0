// The quick soak of `make test` (the long one is `make soak`, tools/soak.ts): 30 s of mixed
// HTTP and TCP traffic through four real Envoy sidecars at a bounded rate on loopback, with
// request ids, trace headers in every format (and some malformed), tracing at 100 % to a
// span collector, and the metadata exchange. Counts exact (requests, 500s, TCP connections
// and bytes, spans), VM heaps under twice their warm value (one allocator step: a late peak
// passes, a leak fails; tools/soak.ts heapCeiling), no Envoy restart, no error log line.
// QUICK_SOAK_SECONDS and QUICK_SOAK_RPS override the defaults.
import { test } from "node:test";
import assert from "node:assert/strict";
import { runSoak } from "../harness/tools.ts";

test("quick soak: exact counts, bounded heaps, no restart, no error log", async () => {
  const report = await runSoak({
    seconds: Number(process.env.QUICK_SOAK_SECONDS ?? 30),
    rps: Number(process.env.QUICK_SOAK_RPS ?? 120),
    progress: (line) => console.log(`# ${line}`),
    progressEverySeconds: 10,
  });
  console.log(`# http ${report.http.sent} requests, tcp ${report.tcp.connections} connections, ${report.spans.reported} spans`);
  assert.deepEqual(report.failures, []);
  assert.ok(report.http.sent > 1000, `only ${report.http.sent} requests`);
});
