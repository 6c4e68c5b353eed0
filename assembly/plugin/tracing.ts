// Trace context of one HTTP request: keeps or creates x-request-id, reads the incoming W3C/B3
// context, starts our span (a child, or a new root) with its sampling decision, and writes it
// to the next hop in every configured format. When the request is logged and sampled, the span
// goes to the reporter. Invalid or conflicting headers start a fresh trace and are counted.
import { getPropertyI64, getPropertyString, getHeader, MapType, removeHeader, replaceHeader } from "../sdk/host";
import { HeaderSnapshot } from "../sdk/headers";
import { CustomTagKind, TracingConfig } from "../config/tracing";
import {
  extractTraceContext, formatB3Multi, formatB3Single, formatTraceparent, isUsableRequestId, startSpan,
  TraceContext, TraceHeaders, TraceOptions, uuidV4,
} from "../trace/context";
import { Span, SpanKind, spanJson } from "../trace/zipkin";
import { Label } from "../stats/labels";
import { Role } from "./labels";
import * as P from "./properties";
import { TelemetryRoot } from "./root";

/** Header names, and their index in the request's HeaderSnapshot (see http.ts). */
export const H_REQUEST_ID = 4;
export const H_TRACEPARENT = 5;
export const H_TRACESTATE = 6;
export const H_B3 = 7;
export const H_B3_TRACE_ID = 8;
export const H_B3_SPAN_ID = 9;
export const H_B3_PARENT_SPAN_ID = 10;
export const H_B3_SAMPLED = 11;
export const H_B3_FLAGS = 12;

const REQUEST_ID = String.UTF8.encode("x-request-id");
const TRACEPARENT = String.UTF8.encode("traceparent");
const TRACESTATE = String.UTF8.encode("tracestate");
const B3 = String.UTF8.encode("b3");
const B3_TRACE_ID = String.UTF8.encode("x-b3-traceid");
const B3_SPAN_ID = String.UTF8.encode("x-b3-spanid");
const B3_PARENT_SPAN_ID = String.UTF8.encode("x-b3-parentspanid");
const B3_SAMPLED = String.UTF8.encode("x-b3-sampled");
const B3_FLAGS = String.UTF8.encode("x-b3-flags");

export function traceOptions(c: TracingConfig): TraceOptions {
  const o = new TraceOptions();
  o.formats = c.readFormats;
  o.traceStateKey = c.traceStateKey;
  o.randomSamplingPercentage = c.samplingPercentage;
  return o;
}

export class RequestTrace {
  constructor(
    public span: TraceContext,
    public requestId: string,
  ) {}
}

function text(h: HeaderSnapshot, i: i32): string {
  const v = h.get(i);
  return v === null ? "" : v;
}

/** Reads and rewrites the request's trace headers; returns our span. */
export function beginTrace(root: TelemetryRoot, h: HeaderSnapshot): RequestTrace {
  const c = root.config.tracing;
  let requestId = text(h, H_REQUEST_ID);
  if (!isUsableRequestId(requestId)) {
    requestId = uuidV4(root.random);
    replaceHeader(MapType.RequestHeaders, REQUEST_ID, String.UTF8.encode(requestId));
  }
  const incoming = new TraceHeaders();
  incoming.traceparent = text(h, H_TRACEPARENT);
  incoming.tracestate = text(h, H_TRACESTATE);
  incoming.b3 = text(h, H_B3);
  incoming.xB3TraceId = text(h, H_B3_TRACE_ID);
  incoming.xB3SpanId = text(h, H_B3_SPAN_ID);
  incoming.xB3ParentSpanId = text(h, H_B3_PARENT_SPAN_ID);
  incoming.xB3Sampled = text(h, H_B3_SAMPLED);
  incoming.xB3Flags = text(h, H_B3_FLAGS);
  const extracted = extractTraceContext(incoming, c.readFormats);
  if (extracted.invalid || extracted.conflict) root.countInvalidTraceHeaders();
  const span = startSpan(extracted, root.traceOptions, root.random);

  if (c.writeW3c) {
    replaceHeader(MapType.RequestHeaders, TRACEPARENT, String.UTF8.encode(formatTraceparent(span)));
    write(TRACESTATE, span.traceState, h, H_TRACESTATE);
  }
  if (c.writeB3Multi) {
    const b3 = formatB3Multi(span);
    write(B3_TRACE_ID, b3.traceId, h, H_B3_TRACE_ID);
    write(B3_SPAN_ID, b3.spanId, h, H_B3_SPAN_ID);
    write(B3_PARENT_SPAN_ID, b3.parentSpanId, h, H_B3_PARENT_SPAN_ID);
    write(B3_SAMPLED, b3.sampled, h, H_B3_SAMPLED);
    write(B3_FLAGS, b3.flags, h, H_B3_FLAGS);
  }
  if (c.writeB3Single) write(B3, formatB3Single(span), h, H_B3);
  return new RequestTrace(span, requestId);
}

// Sets a header to `value` unless it already holds it (a continued trace keeps its trace id
// and sampling flag: no host call), or removes a stale incoming one when there is nothing to send.
function write(name: ArrayBuffer, value: string, h: HeaderSnapshot, index: i32): void {
  const incoming = h.get(index);
  if (value.length > 0) {
    if (incoming === null || incoming != value) replaceHeader(MapType.RequestHeaders, name, String.UTF8.encode(value));
  } else if (incoming !== null) {
    removeHeader(MapType.RequestHeaders, name);
  }
}

/** What the request's log already knows, so its span reads nothing from the host twice. */
export class SpanFacts {
  method: string = "";
  authority: string = "";
  path: string = "";
  requestBytes: i64 = 0;
  responseBytes: i64 = 0;
  durationNs: i64 = 0;
  cluster: string | null = null;
}

/** The request's span goes to a collector: sampled, with a reporter configured. */
export function isReported(root: TelemetryRoot, trace: RequestTrace | null): bool {
  return trace !== null && root.spanReporter !== null && trace.span.isSampled();
}

/**
 * Builds the finished span of a reported request (isReported) from its labels `v` (computed
 * for the metrics) and what its log read, and hands it to the reporter.
 */
export function finishTrace(root: TelemetryRoot, contextId: u32, trace: RequestTrace, role: Role, v: StaticArray<string>, f: SpanFacts): void {
  const reporter = root.spanReporter!;
  const method = f.method;
  const authority = f.authority;
  const path = f.path;
  const t = trace.span;
  const local = root.local.workload;
  const s = new Span();
  s.traceIdHigh = t.traceIdHigh;
  s.traceIdLow = t.traceIdLow;
  s.traceId64 = t.traceId64;
  s.id = t.spanId;
  s.parentId = t.parentSpanId;
  s.debug = t.debug;
  s.kind = role == Role.Outbound ? SpanKind.Client : SpanKind.Server;
  const queryAt = path.indexOf("?");
  const pathOnly = queryAt >= 0 ? path.substring(0, queryAt) : path;
  s.name = authority + pathOnly;
  s.timestampUs = <u64>getPropertyI64(P.REQUEST_TIME, 0) / 1000;
  s.durationUs = <u64>f.durationNs / 1000;
  s.serviceName = serviceName(local.canonicalService.length > 0 ? local.canonicalService : local.workloadName, local.namespace);
  const peer = getPropertyString(role == Role.Inbound ? P.SOURCE_ADDRESS : P.UPSTREAM_ADDRESS);
  if (peer !== null) {
    const colon = peer.lastIndexOf(":");
    s.remoteIpv4 = colon > 0 ? peer.substring(0, colon) : peer;
    if (colon > 0) s.remotePort = portOf(peer, colon + 1);
  }
  const code = v[Label.ResponseCode];
  s.tag("istio.canonical_service", v[role == Role.Outbound ? Label.SourceCanonicalService : Label.DestinationCanonicalService]);
  s.tag("istio.canonical_revision", v[role == Role.Outbound ? Label.SourceCanonicalRevision : Label.DestinationCanonicalRevision]);
  s.tag("istio.namespace", local.namespace.length > 0 ? local.namespace : "unknown");
  s.tag("node_id", root.local.nodeId);
  const cluster = f.cluster;
  s.tag("upstream_cluster", cluster === null ? "-" : cluster);
  s.tag("http.method", method);
  s.tag("http.url", "http://" + authority + path);
  s.tag("http.protocol", v[Label.RequestProtocol]);
  s.tag("http.status_code", code);
  s.tag("response_flags", v[Label.ResponseFlags]);
  s.tag("request_size", f.requestBytes.toString());
  s.tag("response_size", f.responseBytes.toString());
  if (peer !== null) s.tag("peer.address", peer);
  s.tag("guid:x-request-id", trace.requestId);
  s.tag("component", "proxy");
  if (code.length == 3 && code.charCodeAt(0) == 0x35) s.tag("error", "true");
  addCustomTags(root, s);
  reporter.add(spanJson(s), contextId);
}

function serviceName(service: string, namespace: string): string {
  return (service.length > 0 ? service : "unknown") + "." + (namespace.length > 0 ? namespace : "default");
}

function addCustomTags(root: TelemetryRoot, s: Span): void {
  const tags = root.config.tracing.customTags;
  for (let i = 0; i < tags.length; i++) {
    const t = tags[i];
    if (t.kind == CustomTagKind.Header) {
      const value = getHeader(MapType.RequestHeaders, String.UTF8.encode(t.source));
      s.tag(t.tag, value !== null ? String.UTF8.decode(value) : t.defaultValue);
    } else {
      // Literal, environment and node metadata values were resolved at configure time.
      s.tag(t.tag, root.resolvedTagValues[i]);
    }
  }
}

// The decimal port after an address's last colon; 0 when it is not one.
function portOf(address: string, start: i32): i32 {
  let port = 0;
  for (let i = start; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c < 0x30 || c > 0x39 || port > 65535) return 0;
    port = port * 10 + (c - 0x30);
  }
  return port;
}
