// OTLP/HTTP protobuf for the spans the plugin reports: one ExportTraceServiceRequest per batch
// (POST /v1/traces, content-type application/x-protobuf). Field numbers and wire types are
// opentelemetry-proto's (collector/trace/v1/trace_service.proto, trace/v1/trace.proto,
// common/v1/common.proto, resource/v1/resource.proto). The trace messages have no repeated
// scalar fields, so nothing here is packed.
//
// A batch is measured first and written into one buffer of its exact size: the buffer and the
// writer are the batch's only allocations, whatever its number of spans and attributes (the
// hot-path rule of ../text/join.ts).
// Pure, so it is unit tested without a proxy.
import { Span, SpanKind } from "./span";
import { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, WireReader } from "../proto/wire";

/** What every span of a batch shares: the OTLP resource (this proxy's workload). */
export class OtlpResource {
  constructor(
    /** service.name: the canonical service. */
    public serviceName: string,
    /** k8s.namespace.name; "" to leave it out. */
    public namespace: string,
  ) {}
}

export const SCOPE_NAME = "mesh-telemetry-wasm";

/** Longest string value written, in UTF-16 code units; longer ones are cut (a hostile path must not make a batch huge). */
export const MAX_STRING_UNITS = 1024;

// Span.SpanKind and Status.StatusCode values; Span.flags bits.
const KIND_SERVER: u64 = 2;
const KIND_CLIENT: u64 = 3;
const STATUS_ERROR: u64 = 2;
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/** Bytes of `v` as a protobuf varint (1 to 10). */
export function varintSize(v: u64): i32 {
  let n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

// End of the code units of s[start, end) written: at most MAX_STRING_UNITS of them, never
// ending inside a surrogate pair.
function cutEnd(s: string, start: i32, end: i32): i32 {
  if (end - start <= MAX_STRING_UNITS) return end;
  let n = start + MAX_STRING_UNITS;
  const last = s.charCodeAt(n - 1);
  if (last >= 0xd800 && last <= 0xdbff) n--;
  return n;
}

// UTF-8 bytes of s[start, end); a lone surrogate counts as U+FFFD (3 bytes), which is what
// the writer puts there: protobuf strings must be valid UTF-8.
function utf8Size(s: string, start: i32, end: i32): i32 {
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < end && (s.charCodeAt(i + 1) & 0xfc00) == 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

// Bytes of a length-delimited field with a one-byte tag (field numbers below 16).
function lenFieldSize(payload: i32): i32 {
  return 1 + varintSize(<u64>payload) + payload;
}

function sliceFieldSize(s: string, start: i32, end: i32): i32 {
  return lenFieldSize(utf8Size(s, start, cutEnd(s, start, end)));
}

// KeyValue{key = 1, value = 2: AnyValue{string_value = 1}}, the value being s[start, end).
function sliceAttributeSize(key: string, s: string, start: i32, end: i32): i32 {
  return sliceFieldSize(key, 0, key.length) + lenFieldSize(sliceFieldSize(s, start, end));
}

// KeyValue{key = 1, value = 2: AnyValue{int_value = 3}}.
function intAttributeSize(key: string, value: i64): i32 {
  return sliceFieldSize(key, 0, key.length) + lenFieldSize(1 + varintSize(<u64>value));
}

/**
 * Writes protobuf into a buffer, or only counts the bytes it would write (`measuring`), so one
 * function per message gives both its size and its bytes.
 */
class ProtoWriter {
  measuring: bool = true;
  base: usize = 0;
  pos: i32 = 0;

  byte(b: u32): void {
    if (!this.measuring) store<u8>(this.base + <usize>this.pos, <u8>b);
    this.pos++;
  }

  varint(v: u64): void {
    while (v >= 0x80) {
      this.byte(<u32>(v & 0x7f) | 0x80);
      v >>= 7;
    }
    this.byte(<u32>v);
  }

  tag(field: u32, wireType: u32): void {
    this.varint(<u64>((field << 3) | wireType));
  }

  /** The tag and length of a length-delimited field whose payload follows. */
  lenHeader(field: u32, payload: i32): void {
    this.tag(field, WIRE_LEN);
    this.varint(<u64>payload);
  }

  varintField(field: u32, v: u64): void {
    this.tag(field, WIRE_VARINT);
    this.varint(v);
  }

  fixed64Field(field: u32, v: u64): void {
    this.tag(field, WIRE_I64);
    if (!this.measuring) store<u64>(this.base + <usize>this.pos, v); // wasm is little-endian, as protobuf's fixed64
    this.pos += 8;
  }

  fixed32Field(field: u32, v: u32): void {
    this.tag(field, WIRE_I32);
    if (!this.measuring) store<u32>(this.base + <usize>this.pos, v);
    this.pos += 4;
  }

  stringField(field: u32, s: string): void {
    this.sliceField(field, s, 0, s.length);
  }

  /** s[start, end) as a string field, cut at MAX_STRING_UNITS, lone surrogates as U+FFFD. */
  sliceField(field: u32, s: string, start: i32, end: i32): void {
    const cut = cutEnd(s, start, end);
    const size = utf8Size(s, start, cut);
    this.lenHeader(field, size);
    if (!this.measuring) {
      String.UTF8.encodeUnsafe(changetype<usize>(s) + (<usize>start << 1), cut - start, this.base + <usize>this.pos, false, String.UTF8.ErrorMode.REPLACE);
    }
    this.pos += size;
  }

  /** An id as big-endian bytes (W3C order), `bytes` of them from `high`:`low`. */
  idField(field: u32, high: u64, low: u64, bytes: i32): void {
    this.lenHeader(field, bytes);
    if (!this.measuring) {
      const at = this.base + <usize>this.pos;
      if (bytes == 16) {
        store<u64>(at, bswap<u64>(high));
        store<u64>(at + 8, bswap<u64>(low));
      } else store<u64>(at, bswap<u64>(low));
    }
    this.pos += bytes;
  }

  stringAttribute(field: u32, key: string, value: string): void {
    this.sliceAttribute(field, key, value, 0, value.length);
  }

  sliceAttribute(field: u32, key: string, s: string, start: i32, end: i32): void {
    this.lenHeader(field, sliceAttributeSize(key, s, start, end));
    this.stringField(1, key);
    this.lenHeader(2, sliceFieldSize(s, start, end));
    this.sliceField(1, s, start, end);
  }

  /** A string attribute whose value is a 3-digit status code, written without making the string. */
  statusCodeAttribute(field: u32, key: string, code: i32): void {
    const keyBytes = sliceFieldSize(key, 0, key.length);
    this.lenHeader(field, keyBytes + lenFieldSize(lenFieldSize(3)));
    this.stringField(1, key);
    this.lenHeader(2, lenFieldSize(3));
    this.lenHeader(1, 3);
    this.byte(0x30 + <u32>(code / 100) % 10);
    this.byte(0x30 + <u32>(code / 10) % 10);
    this.byte(0x30 + <u32>code % 10);
  }

  intAttribute(field: u32, key: string, value: i64): void {
    this.lenHeader(field, intAttributeSize(key, value));
    this.stringField(1, key);
    this.lenHeader(2, 1 + varintSize(<u64>value));
    this.varintField(3, <u64>value);
  }
}

// Resource{attributes = 1}.
function writeResource(w: ProtoWriter, r: OtlpResource): void {
  w.stringAttribute(1, "service.name", r.serviceName);
  if (r.namespace.length > 0) w.stringAttribute(1, "k8s.namespace.name", r.namespace);
}

// InstrumentationScope{name = 1}.
function writeScope(w: ProtoWriter): void {
  w.stringField(1, SCOPE_NAME);
}

// Status{code = 3}: ERROR on a 5xx answer, else left UNSET (the HTTP conventions for both kinds).
function isError(s: Span): bool {
  return s.statusCode >= 500 && s.statusCode < 600;
}

// The host of an authority ("host:port", "[v6]:port", "host"): the index where its port's colon is, or -1.
function portColon(authority: string): i32 {
  const colon = authority.lastIndexOf(":");
  if (colon < 0 || authority.lastIndexOf("]") > colon) return -1;
  return colon;
}

function decimal(s: string, start: i32): i64 {
  if (start >= s.length || s.length - start > 5) return -1;
  let n: i64 = 0;
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    n = n * 10 + (c - 0x30);
  }
  return n <= 65535 ? n : -1;
}

// OpenTelemetry's HTTP semantic conventions, from the span's facts, then Istio's tags. The
// path and query, host and port are written as slices of their strings: no substrings.
function writeAttributes(w: ProtoWriter, s: Span): void {
  if (s.method.length > 0) w.stringAttribute(9, "http.request.method", s.method);
  const path = s.path;
  const query = path.indexOf("?");
  w.sliceAttribute(9, "url.path", path, 0, query >= 0 ? query : path.length);
  if (query >= 0) w.sliceAttribute(9, "url.query", path, query + 1, path.length);
  w.stringAttribute(9, "url.scheme", s.scheme);
  const authority = s.authority;
  if (authority.length > 0) {
    const colon = portColon(authority);
    const port = colon >= 0 ? decimal(authority, colon + 1) : -1;
    w.sliceAttribute(9, "server.address", authority, 0, colon >= 0 ? colon : authority.length);
    if (port >= 0) w.intAttribute(9, "server.port", port);
  }
  if (s.remoteIpv4.length > 0) {
    w.stringAttribute(9, "network.peer.address", s.remoteIpv4);
    if (s.remotePort > 0) w.intAttribute(9, "network.peer.port", s.remotePort);
  }
  if (s.statusCode > 0) w.intAttribute(9, "http.response.status_code", s.statusCode);
  if (isError(s)) w.statusCodeAttribute(9, "error.type", s.statusCode);
  for (let i = 0; i < s.tagKeys.length; i++) w.stringAttribute(9, s.tagKeys[i], s.tagValues[i]);
}

function writeSpan(w: ProtoWriter, s: Span): void {
  w.idField(1, s.traceIdHigh, s.traceIdLow, 16); // a 64-bit B3 trace id has a zero high half
  w.idField(2, 0, s.id, 8);
  if (s.traceState.length > 0) w.stringField(3, s.traceState);
  if (s.parentId != 0) w.idField(4, 0, s.parentId, 8);
  w.stringField(5, s.name);
  w.varintField(6, s.kind == SpanKind.Client ? KIND_CLIENT : KIND_SERVER);
  w.fixed64Field(7, s.startNs);
  w.fixed64Field(8, s.startNs + s.durationNs);
  writeAttributes(w, s);
  if (isError(s)) {
    w.lenHeader(15, 2);
    w.varintField(3, STATUS_ERROR);
  }
  // Reported spans are sampled; a parent, when there is one, came from another process.
  w.fixed32Field(16, FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | (s.parentId != 0 ? FLAG_IS_REMOTE : 0));
}

// Bytes `write` puts at the writer's position, without writing them.
function spanSize(w: ProtoWriter, s: Span): i32 {
  const measuring = w.measuring;
  const at = w.pos;
  w.measuring = true;
  writeSpan(w, s);
  const size = w.pos - at;
  w.pos = at;
  w.measuring = measuring;
  return size;
}

function resourceSize(w: ProtoWriter, r: OtlpResource): i32 {
  const at = w.pos;
  writeResource(w, r);
  const size = w.pos - at;
  w.pos = at;
  return size;
}

/**
 * One ExportTraceServiceRequest for spans[0, count): one ResourceSpans (this proxy), one
 * ScopeSpans, the spans. Returns a buffer of exactly the encoded size.
 */
export function encodeTraceRequest(resource: OtlpResource, spans: Span[], count: i32): ArrayBuffer {
  const n = min(count, spans.length);
  const w = new ProtoWriter();
  // Sizes, innermost first.
  const resourceBytes = resourceSize(w, resource);
  const scopeBytes = lenFieldSize(SCOPE_NAME.length); // ASCII
  let spansBytes = 0;
  for (let i = 0; i < n; i++) spansBytes += lenFieldSize(spanSize(w, spans[i]));
  const scopeSpansBytes = lenFieldSize(scopeBytes) + spansBytes;
  const resourceSpansBytes = lenFieldSize(resourceBytes) + lenFieldSize(scopeSpansBytes);
  const total = lenFieldSize(resourceSpansBytes);

  const out = new ArrayBuffer(total);
  w.measuring = false;
  w.base = changetype<usize>(out);
  w.pos = 0;
  w.lenHeader(1, resourceSpansBytes); // ExportTraceServiceRequest.resource_spans
  w.lenHeader(1, resourceBytes); // ResourceSpans.resource
  writeResource(w, resource);
  w.lenHeader(2, scopeSpansBytes); // ResourceSpans.scope_spans
  w.lenHeader(1, scopeBytes); // ScopeSpans.scope
  writeScope(w);
  for (let i = 0; i < n; i++) {
    const s = spans[i];
    w.lenHeader(2, spanSize(w, s)); // ScopeSpans.spans
    writeSpan(w, s);
  }
  return out;
}

/**
 * The spans an OTLP collector's answer says it rejected: ExportTraceServiceResponse
 * {partial_success = 1: {rejected_spans = 1, error_message = 2}}. -1 when the body is not
 * such a message (garbage); 0 for an empty body (full success).
 */
export function rejectedSpans(body: ArrayBuffer): i64 {
  const start = changetype<usize>(body);
  const r = answerReader.reset(start, start + <usize>body.byteLength);
  let rejected: i64 = 0;
  while (r.more()) {
    const key = r.key();
    if (r.failed) return -1;
    if (key >> 3 == 1 && (key & 7) == WIRE_LEN) {
      // partial_success: its fields must end where it does.
      const stop = r.lengthEnd();
      const bodyEnd = r.end;
      r.end = stop;
      while (r.more()) {
        const inner = r.key();
        if (inner >> 3 == 1 && (inner & 7) == WIRE_VARINT) rejected = <i64>r.varint();
        else if (!r.failed) r.skip(inner & 7);
      }
      r.end = bodyEnd;
    } else {
      r.skip(key & 7);
    }
    if (r.failed) return -1;
  }
  return rejected < 0 ? -1 : rejected;
}

// The collector's answer is read once per export, by one reader allocated once.
const answerReader = new WireReader();
