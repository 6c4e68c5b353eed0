// Garbage collection for the `minimal` runtime (two-colour mark and sweep, no write barriers):
// it only collects when asked, so the plugin asks at a safe point, at the end of a stream,
// when no managed object lives only on the Wasm stack. Every object a callback still uses is
// reachable from the context map or the root context then. Collecting every Nth stream keeps
// the cost of a full collection off the per-request path.
import { MetricType, defineMetric, recordMetric } from "./host";

const STREAMS_PER_COLLECTION: u32 = 128;
let streamsSinceCollection: u32 = 0;
let heapGaugeId: i64 = -1;

/** Defines the VM heap gauge (call at configure time, not at start-up). */
export function defineHeapGauge(): void {
  if (heapGaugeId < 0) heapGaugeId = defineMetric(MetricType.Gauge, "mesh_telemetry_vm_heap_bytes");
  recordHeap();
}

// Linear memory after the last collection: when a stream made it grow (huge headers), the
// garbage is collected at once instead of up to STREAMS_PER_COLLECTION streams later, so a run
// of large requests cannot grow the heap by that many times their size.
let pagesAfterCollection: i32 = 0;

/** Call when a stream (request or connection) ends. */
export function streamEnded(): void {
  if (++streamsSinceCollection < STREAMS_PER_COLLECTION && memory.size() <= pagesAfterCollection) return;
  streamsSinceCollection = 0;
  __collect();
  pagesAfterCollection = memory.size();
  recordHeap();
}

// Linear memory never shrinks, so its size is the VM's heap footprint.
function recordHeap(): void {
  if (heapGaugeId >= 0) recordMetric(<u32>heapGaugeId, <u64>memory.size() << 16);
}
