// Batches finished spans in the VM, one queue whatever the number of formats, and hands each
// batch to every configured exporter (Zipkin JSON, OTLP protobuf), when a batch fills and on
// the root's timer. Bounded: past max_buffered_spans new spans are dropped and counted by each
// exporter.
import { RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import { setEffectiveContext } from "../sdk/host";
import { TracingConfig } from "../config/tracing";
import { Span } from "../trace/span";
import { spanJson } from "../trace/zipkin";
import { joinStrings } from "../text/join";
import { SpanExporter } from "./exporter";
import { OtlpExporter } from "./otlp-exporter";
import { LocalIdentity } from "./identity";

// POST <path> with a JSON array of Zipkin v2 spans.
class ZipkinExporter extends SpanExporter {
  constructor(root: RootContext, c: TracingConfig) {
    super(root, c.zipkin, "application/json", "mesh_telemetry_spans_reported_total", "mesh_telemetry_spans_dropped_total");
  }

  encode(spans: Span[], count: i32): ArrayBuffer {
    const json = new Array<string>(count);
    for (let i = 0; i < count; i++) json[i] = spanJson(spans[i]);
    return String.UTF8.encode("[" + joinStrings(json, ",") + "]");
  }
}

export class SpanReporter {
  private buffer: Span[] = [];
  private exporters: SpanExporter[] = [];

  constructor(
    readonly root: RootContext,
    readonly config: TracingConfig,
    local: LocalIdentity,
  ) {
    if (config.zipkin.isOn()) this.exporters.push(new ZipkinExporter(root, config));
    if (config.otlp.isOn()) this.exporters.push(new OtlpExporter(root, config, local));
  }

  /** Queues one finished span; sends a batch when one is full. */
  add(span: Span, currentContextId: u32): void {
    if (this.buffer.length >= this.config.maxBufferedSpans) {
      for (let i = 0; i < this.exporters.length; i++) this.exporters[i].dropped(1);
      return;
    }
    this.buffer.push(span);
    if (this.buffer.length >= this.config.maxBatchSpans) {
      this.flush();
      setEffectiveContext(currentContextId);
    }
  }

  /**
   * Sends up to one batch to every exporter. Waits (the buffer bounds the wait) while all of
   * them are busy; a busy one among free ones drops the batch for its format only. Leaves the
   * effective context on the root.
   */
  flush(): void {
    if (this.buffer.length == 0) return;
    let busy = 0;
    for (let i = 0; i < this.exporters.length; i++) if (this.exporters[i].isBusy()) busy++;
    if (busy == this.exporters.length) return;
    const n = min(this.buffer.length, this.config.maxBatchSpans);
    const batch = this.buffer.slice(0, n);
    this.buffer = this.buffer.slice(n);
    for (let i = 0; i < this.exporters.length; i++) this.exporters[i].send(batch, n);
  }
}
