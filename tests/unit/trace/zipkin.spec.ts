import { jsonString, spanJson } from "../../../assembly/trace/zipkin";
import { Span, SpanKind } from "../../../assembly/trace/span";

describe("Zipkin v2 JSON", () => {
  it("writes a span with ids, kind, endpoints and tags", () => {
    const s = new Span();
    s.traceIdHigh = 0x0af7651916cd43dd;
    s.traceIdLow = 0x8448eb211c80319c;
    s.id = 0xb7ad6b7169203331;
    s.parentId = 0x00f067aa0ba902b7;
    s.kind = SpanKind.Client;
    s.name = "reviews:9080/reviews/0";
    s.startNs = 1700000000000000000;
    s.durationNs = 1234000;
    s.serviceName = "productpage.default";
    s.remoteIpv4 = "10.0.0.7";
    s.remotePort = 9080;
    s.tag("http.status_code", "200");
    expect(spanJson(s)).toBe(
      '{"traceId":"0af7651916cd43dd8448eb211c80319c","id":"b7ad6b7169203331","parentId":"00f067aa0ba902b7","kind":"CLIENT",' +
        '"name":"reviews:9080/reviews/0","timestamp":1700000000000000,"duration":1234,' +
        '"localEndpoint":{"serviceName":"productpage.default"},"remoteEndpoint":{"ipv4":"10.0.0.7","port":9080},' +
        '"tags":{"http.status_code":"200"}}',
    );
  });

  it("keeps a 64-bit trace id short, omits a root's parent, and never writes a zero duration", () => {
    const s = new Span();
    s.traceIdLow = 0x463ac35c9f6413ad;
    s.traceId64 = true;
    s.id = 1;
    s.serviceName = "a.b";
    expect(spanJson(s)).toBe(
      '{"traceId":"463ac35c9f6413ad","id":"0000000000000001","kind":"SERVER","name":"","timestamp":0,"duration":1,"localEndpoint":{"serviceName":"a.b"}}',
    );
  });

  it("escapes strings for JSON, replacing lone surrogates", () => {
    expect(jsonString('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(jsonString("line\nfeed\ttab\u0001")).toBe('"line\\nfeed\\ttab\\u0001"');
    expect(jsonString("\u001f")).toBe('"\\u001f"');
    expect(jsonString("ok 😀")).toBe('"ok 😀"');
    expect(jsonString("bad \ud800 x")).toBe('"bad \ufffd x"');
  });
});
