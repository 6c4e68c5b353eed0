// Batches finished spans in the VM and sends them to the Zipkin collector with proxy_http_call
// (POST <path>, a JSON array), when a batch fills and on the root's timer. Bounded: past
// max_buffered_spans new spans are dropped and counted; a failed or slow collector costs at
// most MAX_IN_FLIGHT outstanding calls and never touches request traffic.
import { BaseContext, Context, HeaderPair, RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import { defineMetric, getHeader, incrementMetric, MapType, MetricType, setEffectiveContext } from "../sdk/host";
import { TracingConfig } from "../config/tracing";
import { joinStrings } from "../text/join";

const MAX_IN_FLIGHT = 4;
const STATUS = String.UTF8.encode(":status");

// The origin "context" of one collector call: it carries the batch size to the callback (the
// SDK passes only the origin context). It borrows the root's id, so the SDK's switch of the
// effective context before the callback lands on the root.
class SpanBatch extends BaseContext {
  constructor(
    root_id: u32,
    readonly reporter: SpanReporter,
    readonly count: i32,
  ) {
    super(root_id);
  }
}

function onCollectorResponse(origin: BaseContext, headers: u32, _body_size: usize, _trailers: u32): void {
  const batch = changetype<SpanBatch>(origin);
  let ok = false;
  if (headers > 0) {
    const status = getHeader(MapType.HttpCallResponseHeaders, STATUS);
    ok = status !== null && String.UTF8.decode(status).startsWith("2");
  }
  batch.reporter.completed(batch.count, ok);
}

export class SpanReporter {
  private buffer: string[] = [];
  private inFlight: i32 = 0;
  private reportedId: i64 = defineMetric(MetricType.Counter, "mesh_telemetry_spans_reported_total");
  private droppedId: i64 = defineMetric(MetricType.Counter, "mesh_telemetry_spans_dropped_total");

  constructor(
    readonly root: RootContext,
    readonly config: TracingConfig,
  ) {}

  /** Queues one span (Zipkin JSON); sends a batch when one is full. */
  add(spanJson: string, currentContextId: u32): void {
    if (this.buffer.length >= this.config.maxBufferedSpans) {
      count(this.droppedId, 1);
      return;
    }
    this.buffer.push(spanJson);
    if (this.buffer.length >= this.config.maxBatchSpans) {
      this.flush();
      setEffectiveContext(currentContextId);
    }
  }

  /** Sends up to one batch. Leaves the effective context on the root. */
  flush(): void {
    if (this.buffer.length == 0 || this.inFlight >= MAX_IN_FLIGHT) return;
    const n = min(this.buffer.length, this.config.maxBatchSpans);
    const body = "[" + joinStrings(this.buffer.slice(0, n), ",") + "]";
    this.buffer = this.buffer.slice(n);
    const c = this.config;
    const headers: HeaderPair[] = [
      pair(":method", "POST"),
      pair(":path", c.zipkinPath),
      pair(":authority", c.zipkinAuthority),
      pair("content-type", "application/json"),
    ];
    // The call belongs to the root context, not to the stream that happens to be logging.
    setEffectiveContext(this.root.context_id);
    const batch = new SpanBatch(this.root.context_id, this, n);
    const status = this.root.httpCall(c.zipkinCluster, headers, String.UTF8.encode(body), [], c.zipkinTimeoutMs, batch, onCollectorResponse);
    if (status == 0) this.inFlight++;
    else count(this.droppedId, n);
  }

  completed(n: i32, ok: bool): void {
    this.inFlight--;
    count(ok ? this.reportedId : this.droppedId, n);
  }
}

function pair(key: string, value: string): HeaderPair {
  return new HeaderPair(String.UTF8.encode(key), String.UTF8.encode(value));
}

function count(id: i64, n: i32): void {
  if (id >= 0 && n > 0) incrementMetric(<u32>id, n);
}
