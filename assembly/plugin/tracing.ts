// Trace context of one HTTP request, on its request headers: keeps or creates x-request-id,
// reads the incoming W3C/B3 context, starts our span (a child, or a new root) with its sampling
// decision, and writes it to the next hop in every configured format. Invalid or conflicting
// headers start a fresh trace and are counted. The common cases allocate nothing: a request
// without incoming context starts its root span on the fast path, and every value is formatted
// as bytes into one scratch buffer and written only when it differs from what arrived.
import { incrementMetric, MapType, removeHeader, replaceHeader, replaceHeaderBytes } from "../sdk/host";
import { HeaderSnapshot } from "../sdk/headers";
import { TracingConfig } from "../config/tracing";
import {
  decideSampling, extractTraceContext, formatB3Single, isUsableRequestId, MAX_REQUEST_ID_LENGTH, newRootContext,
  RandomSource, Sampling, SplitMix64, startSpan, TraceContext, TraceHeaders, TraceOptions, u64ToHex, uuidV4,
  writeB3TraceId, writeSpanId, writeTraceparent,
} from "../trace/context";
import { writeHex } from "../trace/hex";
import * as N from "./headers";
import { H } from "./headers";

/** What trace context needs from the configuration, worked out once per configure. */
export class TraceSettings {
  options: TraceOptions = new TraceOptions();
  random: RandomSource = new SplitMix64(0);
  /** Our tracestate key as bytes, for the fast path; empty when none is written. */
  stateKey: ArrayBuffer = new ArrayBuffer(0);
  invalidCounterId: i64 = -1;

  constructor(readonly config: TracingConfig) {
    const o = this.options;
    o.formats = config.readFormats;
    o.traceStateKey = config.traceStateKey;
    o.randomSamplingPercentage = config.samplingPercentage;
    this.stateKey = String.UTF8.encode(config.traceStateKey);
  }
}

export class RequestTrace {
  /** The request id when the span is sampled (for its tags); "" otherwise. */
  requestId: string = "";

  constructor(public span: TraceContext) {}
}

// Header values are formatted here, one at a time: Envoy copies a value during the call.
const SCRATCH = memory.data(128);

/** Reads and rewrites the request's trace headers; returns our span. */
export function beginTrace(t: TraceSettings, h: HeaderSnapshot): RequestTrace {
  const c = t.config;
  let generatedId: string | null = null;
  if (!isUsableRequestIdBytes(h, H.RequestId)) {
    generatedId = uuidV4(t.random);
    replaceHeader(MapType.RequestHeaders, N.REQUEST_ID, String.UTF8.encode(generatedId));
  }
  let span: TraceContext;
  let fastState = false;
  if (!hasIncomingContext(h)) {
    // No caller context: a new root, sampled by our own draw.
    span = newRootContext(t.random);
    span.sampled = decideSampling(Sampling.Unset, false, t.options.randomSamplingPercentage, t.random.next64()) ? Sampling.Yes : Sampling.No;
    fastState = true;
  } else {
    const incoming = new TraceHeaders();
    incoming.traceparent = text(h, H.Traceparent);
    incoming.tracestate = text(h, H.Tracestate);
    incoming.b3 = text(h, H.B3);
    incoming.xB3TraceId = text(h, H.B3TraceId);
    incoming.xB3SpanId = text(h, H.B3SpanId);
    incoming.xB3ParentSpanId = text(h, H.B3ParentSpanId);
    incoming.xB3Sampled = text(h, H.B3Sampled);
    incoming.xB3Flags = text(h, H.B3Flags);
    const extracted = extractTraceContext(incoming, c.readFormats);
    if ((extracted.invalid || extracted.conflict) && t.invalidCounterId >= 0) incrementMetric(<u32>t.invalidCounterId, 1);
    span = startSpan(extracted, t.options, t.random);
  }
  const trace = new RequestTrace(span);
  if (span.isSampled()) {
    trace.requestId = generatedId !== null ? generatedId : text(h, H.RequestId);
    // A sampled root span's state is also kept as text, for exporters that carry it.
    if (fastState && t.stateKey.byteLength > 0) span.traceState = c.traceStateKey + "=" + u64ToHex(span.spanId);
  }

  if (c.writeW3c) {
    write(h, H.Traceparent, N.TRACEPARENT, writeTraceparent(span, SCRATCH));
    if (fastState) write(h, H.Tracestate, N.TRACESTATE, writeStateEntry(t.stateKey, span.spanId));
    else writeText(h, H.Tracestate, N.TRACESTATE, span.traceState);
  }
  if (c.writeB3Multi) {
    const ids = span.hasIds();
    write(h, H.B3TraceId, N.B3_TRACE_ID, ids ? writeB3TraceId(span, SCRATCH) : 0);
    write(h, H.B3SpanId, N.B3_SPAN_ID, ids ? writeSpanId(span.spanId, SCRATCH) : 0);
    write(h, H.B3ParentSpanId, N.B3_PARENT_SPAN_ID, ids && span.parentSpanId != 0 ? writeSpanId(span.parentSpanId, SCRATCH) : 0);
    write(h, H.B3Sampled, N.B3_SAMPLED, span.debug ? 0 : writeFlag(span.sampled));
    write(h, H.B3Flags, N.B3_FLAGS, span.debug ? writeByte(0x31) : 0);
  }
  if (c.writeB3Single) writeText(h, H.B3, N.B3, formatB3Single(span));
  return trace;
}

function text(h: HeaderSnapshot, i: i32): string {
  const v = h.get(i);
  return v === null ? "" : v;
}

function hasIncomingContext(h: HeaderSnapshot): bool {
  for (let i = <i32>H.Traceparent; i <= <i32>H.B3Flags; i++) if (h.has(i)) return true;
  return false;
}

// isUsableRequestId on the header's bytes: 1-256 bytes, no control characters, something
// besides spaces and tabs. One value only: a repeated header is not usable.
function isUsableRequestIdBytes(h: HeaderSnapshot, i: i32): bool {
  if (h.counts[i] != 1) return h.counts[i] > 1 && isUsableRequestId(text(h, i));
  const n = h.length(i);
  if (n < 1 || n > <u32>MAX_REQUEST_ID_LENGTH) return false;
  const p = h.start(i);
  let visible = false;
  for (let k: u32 = 0; k < n; k++) {
    const b = load<u8>(p + k);
    if ((b < 0x20 && b != 0x09) || b == 0x7f) return false;
    if (b != 0x20 && b != 0x09) visible = true;
  }
  return visible;
}

// Sets a header to the `length` bytes in SCRATCH unless it already holds them (a continued
// trace keeps its trace id and flags: no host call), or removes a stale incoming one when there
// is nothing to send.
function write(h: HeaderSnapshot, index: i32, name: ArrayBuffer, length: i32): void {
  if (length > 0) {
    if (!h.equals(index, SCRATCH, length)) replaceHeaderBytes(MapType.RequestHeaders, name, SCRATCH, length);
  } else if (h.has(index)) {
    removeHeader(MapType.RequestHeaders, name);
  }
}

function writeText(h: HeaderSnapshot, index: i32, name: ArrayBuffer, value: string): void {
  const n = String.UTF8.byteLength(value);
  if (n > 0 && n <= 128) {
    String.UTF8.encodeUnsafe(changetype<usize>(value), value.length, SCRATCH);
    write(h, index, name, n);
  } else if (n > 0) {
    const bytes = String.UTF8.encode(value);
    if (!h.equals(index, changetype<usize>(bytes), bytes.byteLength)) replaceHeader(MapType.RequestHeaders, name, bytes);
  } else {
    write(h, index, name, 0);
  }
}

// `<key>=<span id>`: a new root span's tracestate, our entry alone.
function writeStateEntry(key: ArrayBuffer, spanId: u64): i32 {
  const k = key.byteLength;
  if (k == 0 || k > 100) return 0;
  memory.copy(SCRATCH, changetype<usize>(key), k);
  store<u8>(SCRATCH + k, 0x3d);
  writeHex(SCRATCH + k + 1, spanId, 16);
  return k + 17;
}

// x-b3-sampled: "1", "0", or nothing without a decision.
function writeFlag(sampled: Sampling): i32 {
  if (sampled == Sampling.Yes) return writeByte(0x31);
  if (sampled == Sampling.No) return writeByte(0x30);
  return 0;
}

function writeByte(b: u8): i32 {
  store<u8>(SCRATCH, b);
  return 1;
}
