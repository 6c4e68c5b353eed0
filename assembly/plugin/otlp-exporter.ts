// OTLP/HTTP with protobuf encoding (POST /v1/traces, application/x-protobuf), the format
// Jaeger v2, Tempo and the OpenTelemetry Collector take natively. The resource is this proxy's
// workload; the collector's answer is read for partial success.
import { RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import { BufferType, getBufferBytes } from "../sdk/host";
import { TracingConfig } from "../config/tracing";
import { Span } from "../trace/span";
import { encodeTraceRequest, OtlpResource, rejectedSpans } from "../trace/otlp";
import { SpanExporter } from "./exporter";
import { LocalIdentity } from "./identity";

/** Longest collector answer read; a longer one is not believed (its spans count as dropped). */
const MAX_ANSWER_BYTES: usize = 65536;

export class OtlpExporter extends SpanExporter {
  private resource: OtlpResource;

  constructor(root: RootContext, c: TracingConfig, local: LocalIdentity) {
    super(root, c.otlp, "application/x-protobuf", "mesh_telemetry_otlp_spans_reported_total", "mesh_telemetry_otlp_spans_dropped_total");
    const w = local.workload;
    const service = w.canonicalService.length > 0 ? w.canonicalService : w.workloadName;
    this.resource = new OtlpResource(service.length > 0 ? service : "unknown", w.namespace);
  }

  encode(spans: Span[], count: i32): ArrayBuffer {
    return encodeTraceRequest(this.resource, spans, count);
  }

  // A 2xx answer is an ExportTraceServiceResponse; its partial_success names rejected spans.
  // An answer that is not one (garbage, or too long to read) confirms nothing.
  accepted(count: i32, bodySize: usize): i32 {
    if (bodySize == 0) return count;
    if (bodySize > MAX_ANSWER_BYTES) return 0;
    const rejected = rejectedSpans(getBufferBytes(BufferType.HttpCallResponseBody, 0, <u32>bodySize));
    if (rejected < 0) return 0;
    return rejected >= <i64>count ? 0 : count - <i32>rejected;
  }
}
