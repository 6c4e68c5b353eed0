// One span format's way to a collector: encodes a batch, sends it with proxy_http_call on the
// root context, and counts each span once, as reported (the collector took it) or dropped
// (buffer full, call refused, non-2xx, timeout, an answer that rejects it). A failed or slow
// collector costs at most MAX_IN_FLIGHT outstanding calls per format and never touches traffic.
import { BaseContext, HeaderPair, RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import { defineMetric, getHeader, incrementMetric, MapType, MetricType, setEffectiveContext } from "../sdk/host";
import { Span } from "../trace/span";
import { CollectorConfig } from "../config/tracing";

const MAX_IN_FLIGHT = 4;
const STATUS = String.UTF8.encode(":status");

// The origin "context" of one collector call: it carries the exporter and the batch size to the
// callback (the SDK passes only the origin context). It borrows the root's id, so the SDK's
// switch of the effective context before the callback lands on the root.
class SpanBatch extends BaseContext {
  constructor(
    root_id: u32,
    readonly exporter: SpanExporter,
    readonly count: i32,
  ) {
    super(root_id);
  }
}

function onCollectorResponse(origin: BaseContext, headers: u32, body_size: usize, _trailers: u32): void {
  const batch = changetype<SpanBatch>(origin);
  let accepted = 0;
  if (headers > 0) {
    const status = getHeader(MapType.HttpCallResponseHeaders, STATUS);
    if (status !== null && String.UTF8.decode(status).startsWith("2")) accepted = batch.exporter.accepted(batch.count, body_size);
  }
  batch.exporter.completed(batch.count, accepted);
}

export abstract class SpanExporter {
  private inFlight: i32 = 0;
  private reportedId: i64;
  private droppedId: i64;

  /** The collector request's headers, built once. */
  private headers: HeaderPair[];

  constructor(
    readonly root: RootContext,
    readonly collector: CollectorConfig,
    contentType: string,
    reportedMetric: string,
    droppedMetric: string,
  ) {
    const h = [
      headerPair(":method", "POST"),
      headerPair(":path", collector.path),
      headerPair(":authority", collector.authority),
      headerPair("content-type", contentType),
    ];
    for (let i = 0; i < collector.headerNames.length; i++) h.push(headerPair(collector.headerNames[i], collector.headerValues[i]));
    this.headers = h;
    this.reportedId = defineMetric(MetricType.Counter, reportedMetric);
    this.droppedId = defineMetric(MetricType.Counter, droppedMetric);
  }

  /** The request body for spans[0, count). */
  abstract encode(spans: Span[], count: i32): ArrayBuffer;

  /** How many of the batch's `count` spans a 2xx answer with a `bodySize`-byte body accepted. */
  accepted(count: i32, _bodySize: usize): i32 {
    return count;
  }

  isBusy(): bool {
    return this.inFlight >= MAX_IN_FLIGHT;
  }

  /** Sends spans[0, count), or drops them when MAX_IN_FLIGHT calls are outstanding. Leaves the effective context on the root. */
  send(spans: Span[], count: i32): void {
    if (this.isBusy()) {
      this.dropped(count);
      return;
    }
    // The call belongs to the root context, not to the stream that happens to be logging.
    setEffectiveContext(this.root.context_id);
    const batch = new SpanBatch(this.root.context_id, this, count);
    const c = this.collector;
    const status = this.root.httpCall(c.cluster, this.headers, this.encode(spans, count), [], c.timeoutMs, batch, onCollectorResponse);
    if (status == 0) this.inFlight++;
    else this.dropped(count);
  }

  completed(count: i32, accepted: i32): void {
    this.inFlight--;
    add(this.reportedId, accepted);
    this.dropped(count - accepted);
  }

  dropped(count: i32): void {
    add(this.droppedId, count);
  }
}

function headerPair(key: string, value: string): HeaderPair {
  return new HeaderPair(String.UTF8.encode(key), String.UTF8.encode(value));
}

function add(id: i64, n: i32): void {
  if (id >= 0 && n > 0) incrementMetric(<u32>id, n);
}
