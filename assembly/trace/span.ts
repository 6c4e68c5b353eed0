// One finished proxy span, as the facts the exporters need: each format (Zipkin JSON, OTLP
// protobuf) encodes a batch of these when it is sent, so a span is built once whatever the
// number of formats.
export const enum SpanKind {
  Client,
  Server,
}

export class Span {
  traceIdHigh: u64 = 0;
  traceIdLow: u64 = 0;
  /** Emit a 64-bit trace id (the trace arrived as a 16-hex B3 id). */
  traceId64: bool = false;
  id: u64 = 0;
  /** 0 for a root span. */
  parentId: u64 = 0;
  /** The W3C tracestate sent on with this span, "" for none. */
  traceState: string = "";
  kind: SpanKind = SpanKind.Server;
  name: string = "";
  /** Nanoseconds since the epoch, and nanoseconds. */
  startNs: u64 = 0;
  durationNs: u64 = 0;
  /** Zipkin's local service name, "<canonical service>.<namespace>". */
  serviceName: string = "";
  localIpv4: string = "";
  remoteIpv4: string = "";
  remotePort: i32 = 0;
  debug: bool = false;
  /** The HTTP request: method, path with query, authority, scheme, response status (0 = none). */
  method: string = "";
  path: string = "";
  authority: string = "";
  scheme: string = "http";
  statusCode: i32 = 0;
  /** Istio's span tags, in order. */
  tagKeys: string[] = [];
  tagValues: string[] = [];

  tag(key: string, value: string): void {
    this.tagKeys.push(key);
    this.tagValues.push(value);
  }
}
