// The plugin's hot path in Node, for working on the VM's own code: one client (outbound) and
// one server (inbound) VM of the module on the test host (tests/harness/proxywasm.ts, the one
// the unit specs use), with Istio-shaped node and cluster metadata and the metadata exchange
// passed between them (tests/harness/sidecar-vms.ts). Node runs the module in V8, the engine
// Envoy uses, so time inside the VM and the VMs' memory growth per request can be studied here
// in seconds, with `node --cpu-prof` for a profile. It measures the VM only: the host answers
// at once, so the price of host calls in Envoy comes from `make bench`.
//
//   node --import tsx bench/emulator.ts [module.wasm] [--against other.wasm] [--requests N] [--trace PCT]
import { readFileSync } from "node:fs";
import { Session } from "node:inspector";
import { fileURLToPath } from "node:url";
import type { ProxyWasmVm } from "../tests/harness/proxywasm.ts";
import { clientSidecar, serverSidecar, throughPair, TRACING_OFF, tracingAt } from "../tests/harness/sidecar-vms.ts";

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
  readonly client: ProxyWasmVm;
  readonly server: ProxyWasmVm;

  constructor(wasmPath: string, tracePercent: number | null) {
    const module = new WebAssembly.Module(readFileSync(wasmPath));
    const tracing = tracePercent === null ? TRACING_OFF : tracingAt(tracePercent);
    // Host calls are counted, not recorded one by one: a long run would keep millions of records.
    this.client = clientSidecar({ module, config: { reporter: "UNSPECIFIED", ...tracing }, recordCalls: false, echoLog: true });
    this.server = serverSidecar({ module, config: { reporter: "UNSPECIFIED", disable_host_header_fallback: true, ...tracing }, recordCalls: false, echoLog: true });
  }

  run(requests: number): void {
    for (let i = 0; i < requests; i++) throughPair(this.client, this.server);
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
  const calls = pairs.map((p) => [p.client.calls.total, p.server.calls.total]);
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
    hostCallsPerRequest: { client: (p.client.calls.total - calls[i][0]) / (per * rounds), server: (p.server.calls.total - calls[i][1]) / (per * rounds) },
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
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args.splice(i, 2)[1] : undefined;
  };
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
