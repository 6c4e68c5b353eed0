import { encodeTraceRequest, MAX_STRING_UNITS, OtlpResource, rejectedSpans, varintSize } from "../../../assembly/trace/otlp";
import { Span, SpanKind } from "../../../assembly/trace/span";

// Expected bytes are written out from opentelemetry-proto's field numbers and wire types
// (tag byte = field << 3 | wire type), not taken from the encoder. The integration tests also
// decode the encoder's bytes with the generated opentelemetry-proto types and a real Jaeger.

function hex(buf: ArrayBuffer): string {
  const digits = "0123456789abcdef";
  let out = "";
  const p = changetype<usize>(buf);
  for (let i = 0; i < buf.byteLength; i++) {
    const b = load<u8>(p + <usize>i);
    out += digits.charAt(b >> 4) + digits.charAt(b & 15);
  }
  return out;
}

function ascii(s: string): string {
  return hex(String.UTF8.encode(s));
}

function expectHas(encoded: string, part: string): void {
  expect(encoded.includes(part)).toBe(true, part + " in " + encoded);
}

function expectLacks(encoded: string, part: string): void {
  expect(encoded.includes(part)).toBe(false, part + " not in " + encoded);
}

function minimalSpan(): Span {
  const s = new Span();
  s.traceIdHigh = 0x0102030405060708;
  s.traceIdLow = 0x090a0b0c0d0e0f10;
  s.id = 0x1112131415161718;
  s.kind = SpanKind.Server;
  s.name = "n";
  s.startNs = 1;
  s.durationNs = 2;
  return s;
}

function clientSpan(): Span {
  const s = minimalSpan();
  s.kind = SpanKind.Client;
  s.parentId = 0x2122232425262728;
  s.traceState = "mtw=1";
  s.method = "GET";
  s.path = "/reviews/0?x=1";
  s.authority = "reviews:9080";
  s.remoteIpv4 = "10.0.0.7";
  s.remotePort = 9080;
  s.statusCode = 503;
  s.tag("istio.namespace", "default");
  return s;
}

function encodeOne(s: Span): string {
  return hex(encodeTraceRequest(new OtlpResource("svc", ""), [s], 1));
}

describe("OTLP protobuf encoder", () => {
  it("writes a minimal request byte for byte", () => {
    const resource =
      "0a15" + // Resource.attributes (1, LEN), 21 bytes
      "0a0c" + ascii("service.name") + // KeyValue.key (1)
      "1205" + "0a03" + ascii("svc"); // KeyValue.value (2): AnyValue.string_value (1)
    const scope = "0a13" + ascii("mesh-telemetry-wasm"); // InstrumentationScope.name (1)
    const span =
      "0a10" + "0102030405060708090a0b0c0d0e0f10" + // trace_id (1, bytes, big-endian)
      "1208" + "1112131415161718" + // span_id (2)
      "2a01" + ascii("n") + // name (5)
      "3002" + // kind (6, varint) SPAN_KIND_SERVER
      "39" + "0100000000000000" + // start_time_unix_nano (7, fixed64, little-endian)
      "41" + "0300000000000000" + // end_time_unix_nano (8, fixed64)
      "4a0e" + "0a08" + ascii("url.path") + "1202" + "0a00" + // attributes (9): url.path ""
      "4a14" + "0a0a" + ascii("url.scheme") + "1206" + "0a04" + ascii("http") +
      "8501" + "01010000"; // flags (16, fixed32: two-byte tag): sampled, parent-is-remote known, not remote
    const expected =
      "0a9301" + // ExportTraceServiceRequest.resource_spans (1), 147 bytes: a two-byte length
      "0a17" + resource + // ResourceSpans.resource (1)
      "1278" + // ResourceSpans.scope_spans (2), 120 bytes
      "0a15" + scope + // ScopeSpans.scope (1)
      "125f" + span; // ScopeSpans.spans (2), 95 bytes
    expect(encodeOne(minimalSpan())).toBe(expected);
  });

  it("writes a client span's parent, tracestate, kind, status, flags and HTTP attributes", () => {
    const out = encodeOne(clientSpan());
    expectHas(out, "2208" + "2122232425262728"); // parent_span_id (4)
    expectHas(out, "1a05" + ascii("mtw=1")); // trace_state (3)
    expectHas(out, "3003"); // kind SPAN_KIND_CLIENT
    expectHas(out, "7a02" + "1802"); // status (15): code (3) STATUS_CODE_ERROR
    expectHas(out, "8501" + "01030000"); // flags: sampled, parent is remote
    expectHas(out, "0a13" + ascii("http.request.method") + "1205" + "0a03" + ascii("GET"));
    expectHas(out, "0a08" + ascii("url.path") + "120c" + "0a0a" + ascii("/reviews/0"));
    expectHas(out, "0a09" + ascii("url.query") + "1205" + "0a03" + ascii("x=1"));
    expectHas(out, "0a0e" + ascii("server.address") + "1209" + "0a07" + ascii("reviews"));
    // Integers as AnyValue.int_value (3, varint): 9080 = f8 46, 503 = f7 03.
    expectHas(out, "0a0b" + ascii("server.port") + "1203" + "18f846");
    expectHas(out, "0a11" + ascii("network.peer.port") + "1203" + "18f846");
    expectHas(out, "0a14" + ascii("network.peer.address") + "120a" + "0a08" + ascii("10.0.0.7"));
    expectHas(out, "0a19" + ascii("http.response.status_code") + "1203" + "18f703");
    expectHas(out, "0a0a" + ascii("error.type") + "1205" + "0a03" + ascii("503"));
    expectHas(out, "0a0f" + ascii("istio.namespace") + "1209" + "0a07" + ascii("default"));
  });

  it("leaves status and error.type out below 500, and the namespace attribute when unknown", () => {
    const s = clientSpan();
    s.statusCode = 404;
    const out = encodeOne(s);
    expectLacks(out, "7a02");
    expectLacks(out, ascii("error.type"));
    expectLacks(out, ascii("k8s.namespace.name"));
    const withNs = hex(encodeTraceRequest(new OtlpResource("reviews", "default"), [s], 1));
    expectHas(withNs, "0a12" + ascii("k8s.namespace.name") + "1209" + "0a07" + ascii("default"));
  });

  it("pads a 64-bit trace id to 16 bytes and omits a root's parent", () => {
    const s = minimalSpan();
    s.traceIdHigh = 0;
    s.traceId64 = true;
    const out = encodeOne(s);
    expectHas(out, "0a10" + "0000000000000000" + "090a0b0c0d0e0f10");
    expectLacks(out, "2208");
  });

  it("uses multi-byte varint lengths past 127 bytes and keeps every length consistent", () => {
    const s = minimalSpan();
    s.path = "/" + "a".repeat(199);
    const out = encodeTraceRequest(new OtlpResource("svc", "ns"), [s], 1);
    // url.path's value: AnyValue (2) of 203 bytes = cb 01, string_value (1) of 200 = c8 01.
    expectHas(hex(out), "12cb01" + "0ac801" + ascii("/a"));
    // The outer length covers exactly the rest of the buffer.
    const first = load<u8>(changetype<usize>(out) + 1);
    const second = load<u8>(changetype<usize>(out) + 2);
    expect(<i32>(first & 0x7f) | (<i32>second << 7)).toBe(out.byteLength - 3);
  });

  it("cuts oversized strings, never inside a surrogate pair, and replaces lone surrogates", () => {
    const s = minimalSpan();
    s.path = "/" + "x".repeat(100000);
    const out = encodeTraceRequest(new OtlpResource("svc", ""), [s], 1);
    expect(out.byteLength).toBeLessThan(MAX_STRING_UNITS + 400);
    expectHas(hex(out), "0a8008" + ascii("/x")); // 1024 bytes
    const pair = minimalSpan();
    pair.path = "a".repeat(MAX_STRING_UNITS - 1) + "\ud83d\ude00";
    expectHas(hex(encodeTraceRequest(new OtlpResource("svc", ""), [pair], 1)), "0aff07" + ascii("aaaa")); // 1023 bytes
    const lone = minimalSpan();
    lone.name = "a\ud800b";
    expectHas(encodeOne(lone), "2a05" + "61efbfbd62");
  });

  it("encodes the first `count` spans of the queue, and an empty batch as a valid request", () => {
    const spans = [minimalSpan(), clientSpan(), minimalSpan()];
    const two = encodeTraceRequest(new OtlpResource("svc", ""), spans, 2);
    const pair = encodeTraceRequest(new OtlpResource("svc", ""), [spans[0], spans[1]], 2);
    expect(hex(two)).toBe(hex(pair));
    expect(encodeTraceRequest(new OtlpResource("svc", ""), spans, 3).byteLength).toBeGreaterThan(two.byteLength);
    expect(hex(encodeTraceRequest(new OtlpResource("svc", ""), spans, 0))).toBe(
      "0a32" + "0a17" + "0a15" + "0a0c" + ascii("service.name") + "1205" + "0a03" + ascii("svc") + "1217" + "0a15" + "0a13" + ascii("mesh-telemetry-wasm"),
    );
  });

  it("sizes varints at their edges", () => {
    expect(varintSize(0)).toBe(1);
    expect(varintSize(127)).toBe(1);
    expect(varintSize(128)).toBe(2);
    expect(varintSize(16383)).toBe(2);
    expect(varintSize(16384)).toBe(3);
    expect(varintSize(0xffffffff)).toBe(5);
    expect(varintSize(u64.MAX_VALUE)).toBe(10);
    expect(varintSize(<u64>(<i64>-1))).toBe(10); // a negative int64 is ten bytes
  });
});

function bytes(hexText: string): ArrayBuffer {
  const out = new ArrayBuffer(hexText.length / 2);
  for (let i = 0; i < out.byteLength; i++) store<u8>(changetype<usize>(out) + <usize>i, <u8>I32.parseInt(hexText.substr(i * 2, 2), 16));
  return out;
}

describe("OTLP collector answers", () => {
  it("reads partial success's rejected spans; an empty answer is full success", () => {
    expect(rejectedSpans(new ArrayBuffer(0))).toBe(0);
    // partial_success (1) {rejected_spans (1) = 3, error_message (2) = "x"}
    expect(rejectedSpans(bytes("0a05" + "0803" + "1201" + "78"))).toBe(3);
    // rejected_spans = 300 (ac 02), after an unknown field of each wire type
    expect(rejectedSpans(bytes("1801" + "210000000000000000" + "2d00000000" + "3200" + "0a03" + "08ac02"))).toBe(300);
    expect(rejectedSpans(bytes("0a00"))).toBe(0);
  });

  it("calls garbage garbage: truncated, overlong, bad wire types, JSON", () => {
    expect(rejectedSpans(bytes("0a05" + "0803"))).toBe(-1); // length past the end
    expect(rejectedSpans(bytes("08"))).toBe(-1); // varint cut short
    expect(rejectedSpans(bytes("ffffffffffffffffffffff01"))).toBe(-1); // an 11-byte varint
    expect(rejectedSpans(bytes("0b"))).toBe(-1); // start group: not in proto3
    expect(rejectedSpans(String.UTF8.encode('{"partialSuccess":{}}'))).toBe(-1);
    expect(rejectedSpans(bytes("0a0b" + "08ffffffffffffffffff01"))).toBe(-1); // a negative count
  });
});
