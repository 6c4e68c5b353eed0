// Fuzz entry: the plugin's pure parsers and codecs behind a byte-buffer interface, compiled
// with the release build's runtime options (tests/fuzz/asconfig.json) and driven from Node by
// tools/fuzz.ts. Each target takes the bytes last placed with `input()`, runs them through the
// same code the plugin runs on configuration text or request headers, checks a few invariants,
// and returns 0, or 1 with a message readable through `message()`/`messageLength()`. A Wasm
// trap or an abort is the driver's business: it saves the input and fails.
//
// Multi-field targets split the input at NUL bytes (Envoy never passes NUL inside a header value).
import { JsonParser } from "../../assembly/config/json";
import { parseConfig, parseDurationMs } from "../../assembly/config/config";
import { ConstantResolver, compileExpression } from "../../assembly/expr/parser";
import { AttributeSource, evaluateToBool, evaluateToInt, evaluateToString } from "../../assembly/expr/ast";
import { base64Decode, base64Encode } from "../../assembly/peer/base64";
import { decodeStruct, encodeStruct } from "../../assembly/peer/struct";
import { workloadFromEndpointLabel, workloadFromStruct, workloadToStruct } from "../../assembly/peer/workload";
import { MAX_CACHED_ID_LENGTH, MAX_CACHED_METADATA_LENGTH, PeerCache } from "../../assembly/peer/cache";
import {
  ExtractResult, SplitMix64, TraceHeaders, TraceOptions, extractTraceContext, formatB3Multi, formatB3Single,
  formatTraceparent, normalizeTraceState, parseB3Multi, parseB3Single, parseTraceparent, requestIdOrNew, startSpan,
  updateTraceState,
} from "../../assembly/trace/context";
import { encodeTags, sanitizeLabelValue } from "../../assembly/stats/names";
import { pickHeaders } from "../../assembly/sdk/headers";
import { encodeTraceRequest, OtlpResource, rejectedSpans } from "../../assembly/trace/otlp";
import { Span } from "../../assembly/trace/span";

let inputBytes = new Uint8Array(0);
let outcome = new ArrayBuffer(0);

/** Makes room for the next input of `length` bytes; returns where the driver writes it. */
export function input(length: i32): usize {
  inputBytes = new Uint8Array(length);
  return inputBytes.dataStart;
}

export function message(): usize {
  return changetype<usize>(outcome);
}

export function messageLength(): i32 {
  return outcome.byteLength;
}

function fail(text: string): i32 {
  outcome = String.UTF8.encode(text);
  return 1;
}

/** Success; `kind` (optional) names the path taken, which the driver uses to keep inputs that reach new ones. */
function ok(kind: string = ""): i32 {
  outcome = String.UTF8.encode(kind);
  return 0;
}

/** The input as text, decoded the way the plugin decodes header values and configuration. */
function text(): string {
  return String.UTF8.decodeUnsafe(inputBytes.dataStart, inputBytes.length);
}

/** The input split at NUL bytes, each field decoded as text. */
function fields(): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i <= inputBytes.length; i++) {
    if (i == inputBytes.length || inputBytes[i] == 0) {
      out.push(String.UTF8.decodeUnsafe(inputBytes.dataStart + <usize>start, <usize>(i - start)));
      start = i + 1;
    }
  }
  return out;
}

function field(f: string[], i: i32): string {
  return i < f.length ? f[i] : "";
}

function sameBytes(a: Uint8Array, b: Uint8Array): bool {
  if (a.length != b.length) return false;
  return memory.compare(a.dataStart, b.dataStart, a.length) == 0;
}

// ---------------------------------------------------------------------------------------------

/** JSON reader: a value, or null with an error and its offset inside the text. */
export function fuzz_json(): i32 {
  const t = text();
  const p = new JsonParser(t);
  const v = p.parse();
  if (v === null) {
    if (p.error.length == 0) return fail("null without an error");
    if (p.errorPos < 0 || p.errorPos > t.length) return fail("error offset " + p.errorPos.toString() + " outside the text");
    return ok(p.error);
  } else if (p.error.length > 0) {
    return fail("a value and an error: " + p.error);
  }
  return ok("value " + v.kindName());
}

class FuzzConstants extends ConstantResolver {
  nodeMetadata(key: string): string | null {
    if (key == "NAME") return "productpage-v1-abc";
    if (key == "EMPTY") return "";
    if (key == "ODD") return "=.=;.;\n\u0000\uFFFD";
    return null;
  }

  nodeMetadataPath(keys: string[]): string | null {
    if (keys.length == 2 && keys[0] == "LABELS" && keys[1] == "app") return "productpage";
    return keys.length == 1 ? this.nodeMetadata(keys[0]) : null;
  }
}

/** Plugin configuration: accepted, or refused with a message naming the field or the JSON offset. */
export function fuzz_config(): i32 {
  const t = text();
  const r = parseConfig(t, new FuzzConstants());
  if (r.config === null) {
    if (!r.error.startsWith("field '") && !r.error.startsWith("malformed JSON at offset ")) return fail("refusal names no field: " + r.error);
    parseDurationMs(t);
    return ok(r.error);
  } else {
    if (r.error.length > 0) return fail("accepted with an error: " + r.error);
    const c = r.config!;
    if (c.maxSeries < 1 || c.maxSeries > 1000000) return fail("max_series out of range: " + c.maxSeries.toString());
    if (c.tcpReportingMs < 100 || c.tcpReportingMs > 3600000) return fail("tcp_reporting_duration out of range");
    if (c.httpPlan.families.length < 4 || c.tcpPlan.families.length != 4) return fail("plan without the standard families");
  }
  return ok("accepted");
}

/** Serves fuzzed bytes for every property an expression reads (cycling through the fields). */
class FuzzAttributes extends AttributeSource {
  next: i32 = 0;
  constructor(private values: ArrayBuffer[]) {
    super();
  }

  property(_path: ArrayBuffer): ArrayBuffer | null {
    if (this.values.length == 0) return null;
    const v = this.values[this.next++ % this.values.length];
    // An empty field stands for an absent attribute.
    return v.byteLength == 0 ? null : v;
  }
}

/** Attribute expressions: compile (first field), then evaluate against hostile property bytes. */
export function fuzz_expr(): i32 {
  const f = fields();
  const r = compileExpression(f[0], new FuzzConstants());
  if (r.expr === null) {
    if (r.error.length == 0) return fail("refused without an error");
    if (r.pos < 0) return fail("refused without a position: " + r.error);
    return ok(r.error);
  }
  const values: ArrayBuffer[] = [];
  for (let i = 1; i < f.length; i++) values.push(String.UTF8.encode(f[i]));
  // Raw bytes too: an 8-byte little-endian int, a 1-byte bool, as Envoy serializes them.
  if (inputBytes.length >= 8) values.push(inputBytes.buffer.slice(inputBytes.length - 8));
  if (inputBytes.length >= 1) values.push(inputBytes.buffer.slice(0, 1));
  const source = new FuzzAttributes(values);
  const expr = r.expr!;
  let kind = "compiled";
  for (let round = 0; round < 3; round++) {
    const s = evaluateToString(expr, source);
    const n = evaluateToInt(expr, source);
    const b = evaluateToBool(expr, source);
    if (round == 0) kind += (s === null ? " missing" : " string") + (n.present ? " int" : "") + " truth" + (<i32>b).toString();
  }
  return ok(kind);
}

/** base64: decoding what the encoder made gives the bytes back. */
export function fuzz_base64(): i32 {
  const decoded = base64Decode(text());
  if (decoded !== null) {
    const again = base64Decode(base64Encode(decoded));
    if (again === null || !sameBytes(decoded, again)) return fail("decode(encode(x)) != x");
  }
  const encoded = base64Encode(inputBytes);
  const back = base64Decode(encoded);
  if (back === null || !sameBytes(back, inputBytes)) return fail("raw bytes do not survive encode/decode");
  return ok();
}

/** protobuf Struct: raw bytes decode or are refused; what decodes re-encodes stably. */
export function fuzz_struct(): i32 {
  const s = decodeStruct(inputBytes);
  if (s === null) return ok("refused");
  const once = encodeStruct(s);
  const s2 = decodeStruct(once);
  if (s2 === null) return fail("the encoder's output does not decode");
  const twice = encodeStruct(s2);
  if (!sameBytes(once, twice)) return fail("encode(decode(encode(decode(x)))) != encode(decode(x))");
  const w = workloadFromStruct(s);
  encodeStruct(workloadToStruct(w));
  return ok("struct " + min(s.keys.length, 4).toString() + (w.workloadName.length > 0 ? " workload" : ""));
}

const PEERS = new PeerCache(8);

/**
 * The inbound path of root.decodePeer: header text -> base64 -> Struct -> workload, cached by
 * id (second field).
 */
export function fuzz_peer(): i32 {
  const f = fields();
  const bytes = base64Decode(f[0]);
  if (bytes !== null) {
    const s = decodeStruct(bytes);
    if (s !== null) {
      const w = workloadFromStruct(s);
      const id = field(f, 1);
      if (id.length > 0) {
        // The cache keys on the header bytes, as the plugin reads them.
        const idBytes = String.UTF8.encode(id);
        const claim = String.UTF8.encode(f[0]);
        const other = String.UTF8.encode(f[0] + "x");
        const idPtr = changetype<usize>(idBytes);
        PEERS.put(idPtr, idBytes.byteLength, changetype<usize>(claim), claim.byteLength, w);
        const cacheable = idBytes.byteLength <= MAX_CACHED_ID_LENGTH && claim.byteLength <= MAX_CACHED_METADATA_LENGTH;
        if (cacheable && PEERS.lookup(idPtr, idBytes.byteLength, changetype<usize>(claim), claim.byteLength) === null) return fail("a peer just cached is missing");
        if (PEERS.lookup(idPtr, idBytes.byteLength, changetype<usize>(other), other.byteLength) !== null) return fail("a different claim was answered from the cache");
      }
    }
  }
  workloadFromEndpointLabel(f[0]);
  return ok();
}

/**
 * Trace headers: traceparent, tracestate, b3, x-b3-traceid, x-b3-spanid, x-b3-parentspanid,
 * x-b3-sampled, x-b3-flags, x-request-id (fields in that order). What we propagate must parse.
 */
export function fuzz_trace(): i32 {
  const f = fields();
  const h = new TraceHeaders();
  h.traceparent = field(f, 0);
  h.tracestate = field(f, 1);
  h.b3 = field(f, 2);
  h.xB3TraceId = field(f, 3);
  h.xB3SpanId = field(f, 4);
  h.xB3ParentSpanId = field(f, 5);
  h.xB3Sampled = field(f, 6);
  h.xB3Flags = field(f, 7);
  const tp = parseTraceparent(h.traceparent);
  if (tp !== null) {
    const again = parseTraceparent(formatTraceparent(tp));
    if (again === null || again.traceIdHigh != tp.traceIdHigh || again.traceIdLow != tp.traceIdLow || again.spanId != tp.spanId) {
      return fail("traceparent does not survive format/parse");
    }
  }
  parseB3Single(h.b3);
  parseB3Multi(h.xB3TraceId, h.xB3SpanId, h.xB3ParentSpanId, h.xB3Sampled, h.xB3Flags);
  normalizeTraceState(h.tracestate);
  const extracted: ExtractResult = extractTraceContext(h);
  const rnd = new SplitMix64(<u64>inputBytes.length * 0x9e3779b9 + 1);
  const span = startSpan(extracted, new TraceOptions(), rnd);
  const out = formatTraceparent(span);
  if (parseTraceparent(out) === null) return fail("we would send an invalid traceparent: " + out);
  if (parseB3Single(formatB3Single(span)) === null) return fail("we would send an invalid b3: " + formatB3Single(span));
  const m = formatB3Multi(span);
  if (parseB3Multi(m.traceId, m.spanId, m.parentSpanId, m.sampled, m.flags) === null) return fail("we would send invalid x-b3-* headers");
  if (span.traceState.length > 0 && normalizeTraceState(span.traceState) === null) return fail("we would send an invalid tracestate: " + span.traceState);
  if (span.traceState.length > 512) return fail("tracestate longer than 512");
  updateTraceState(h.tracestate, field(f, 2), field(f, 3));
  const id = requestIdOrNew(field(f, 8), rnd);
  if (id.length == 0) return fail("empty request id");
  return ok();
}

/**
 * Label values: after sanitizing, a value cannot end its field early or inject a label into
 * the encoded stat name that Envoy's tag regexes `(name=\.=(.*?);\.;)` read back.
 */
export function fuzz_label(): i32 {
  const v = sanitizeLabelValue(text());
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c == 0x7f) return fail("control character kept at " + i.toString());
  }
  const values = new StaticArray<string>(2);
  values[0] = v;
  values[1] = "tail";
  const encoded = encodeTags(["user", "next"], values, 2) + "istio_requests_total";
  // The value ends at the first field separator after its value separator...
  if (encoded.indexOf(";.;", 7) != 7 + v.length) return fail("field separator inside the value: " + encoded);
  // ...and holds no value separator that a tag regex could start a label at.
  if (encoded.indexOf("=.=", 5) != 7 + v.length + 7) return fail("value separator inside the value: " + encoded);
  return ok();
}

const WANTED: StaticArray<ArrayBuffer> = [
  String.UTF8.encode("x-envoy-peer-metadata"),
  String.UTF8.encode("x-envoy-peer-metadata-id"),
  String.UTF8.encode(":authority"),
  String.UTF8.encode("content-type"),
  String.UTF8.encode("x-request-id"),
  String.UTF8.encode("traceparent"),
  String.UTF8.encode("tracestate"),
  String.UTF8.encode("b3"),
  String.UTF8.encode("a"),
];

/**
 * Header maps in the ABI's serialized pairs form (what proxy_get_header_map_pairs returns):
 * read without going outside the buffer, whatever the counts and lengths claim.
 */
export function fuzz_headers(): i32 {
  const snapshot = pickHeaders(inputBytes.buffer, WANTED);
  let found = 0;
  let total = 0;
  for (let i = 0; i < WANTED.length; i++) {
    const v = snapshot.get(i);
    if (v !== null) {
      found++;
      total += v.length;
    }
  }
  // Every value byte came from the input (a repeated key adds one separator per repeat).
  if (total > inputBytes.length * 2) return fail("more value text than input: " + total.toString());
  return ok("found " + String.fromCharCode(0x61 + found));
}

/**
 * OTLP: the input as a collector's answer (untrusted bytes the plugin reads for partial
 * success), then as the strings of a span; the encoded request's outer length covers exactly
 * the rest of the buffer.
 */
export function fuzz_otlp(): i32 {
  const rejected = rejectedSpans(inputBytes.buffer);
  if (rejected < -1) return fail("rejected spans below -1");
  const f = fields();
  const s = new Span();
  s.name = field(f, 0);
  s.path = field(f, 1);
  s.authority = field(f, 2);
  s.traceState = field(f, 3);
  s.method = field(f, 4);
  s.remoteIpv4 = field(f, 5);
  s.tag(field(f, 6), field(f, 7));
  s.statusCode = inputBytes.length > 0 ? <i32>inputBytes[0] * 3 : 0;
  s.parentId = <u64>inputBytes.length;
  const out = encodeTraceRequest(new OtlpResource(field(f, 8), field(f, 9)), [s, s], 2);
  const p = changetype<usize>(out);
  let length: u64 = 0;
  let at = 1;
  for (let shift: u64 = 0; at < out.byteLength; shift += 7) {
    const b = load<u8>(p + <usize>at);
    at++;
    length |= <u64>(b & 0x7f) << shift;
    if (b < 0x80) break;
  }
  if (load<u8>(p) != 0x0a || length != <u64>(out.byteLength - at)) return fail("outer length does not cover the request");
  return ok(rejected < 0 ? "garbage" : rejected == 0 ? "accepted" : "partial");
}
