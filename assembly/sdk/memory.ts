// Garbage collection for the `minimal` runtime (two-colour mark and sweep, no write barriers):
// it only collects when asked, so the plugin asks at a safe point, at the end of a stream or
// of a timer tick, when no managed object lives only on the Wasm stack. Every object a
// callback still uses is reachable from the context map or the root context then. Collecting
// every Nth stream keeps the cost of a full collection off the per-request path.
//
// Ticks count too: the timer allocates (each open connection's report, the span batch), and a
// VM whose streams rarely end (a few long TCP connections, or the main thread's VM, which has
// none) would otherwise never collect and grow without bound, one tick at a time. A tick
// weighs TICK_WEIGHT streams, so such a VM collects at least every
// STREAMS_PER_COLLECTION / TICK_WEIGHT ticks (8 s at the default 1 s TCP reporting period).
import { MetricType, defineMetric, recordMetric } from "./host";

const STREAMS_PER_COLLECTION: u32 = 128;
const TICK_WEIGHT: u32 = 16;
let streamsSinceCollection: u32 = 0;
let heapGaugeId: i64 = -1;

/** Defines the VM heap gauge and sets it (call at configure time, not at start-up). */
export function defineHeapGauge(): void {
  if (heapGaugeId < 0) heapGaugeId = defineMetric(MetricType.Gauge, "mesh_telemetry_vm_heap_bytes");
  if (heapGaugeId >= 0) recordMetric(<u32>heapGaugeId, <u64>memory.size() << 16);
}

// Linear memory after the last collection: when a stream made it grow (huge headers), the
// garbage is collected at once instead of up to STREAMS_PER_COLLECTION streams later, so a run
// of large requests cannot grow the heap by that many times their size.
let pagesAfterCollection: i32 = 0;

// After configure, only a VM that carries streams reports the heap gauge. Envoy runs the
// plugin's root context (configure, the timer) in a VM on the main thread too, which never
// sees a stream; were its collections to report, the gauge would flip between that idle VM's
// footprint and the worker's (seen in the soak: 128 KiB and 4 MiB in turn).
let carriesStreams = false;

/** Call when a stream (request or connection) ends. */
export function streamEnded(): void {
  carriesStreams = true;
  safePoint(1);
}

/** Call when a timer tick's work is done (assembly/index.ts wraps proxy_on_tick). */
export function tickEnded(): void {
  safePoint(TICK_WEIGHT);
}

function safePoint(weight: u32): void {
  streamsSinceCollection += weight;
  if (streamsSinceCollection < STREAMS_PER_COLLECTION && memory.size() <= pagesAfterCollection) return;
  streamsSinceCollection = 0;
  __collect();
  pagesAfterCollection = memory.size();
  recordHeap();
}

// Linear memory never shrinks, so its size is the VM's heap footprint.
function recordHeap(): void {
  if (heapGaugeId >= 0 && carriesStreams) recordMetric(<u32>heapGaugeId, <u64>memory.size() << 16);
}
