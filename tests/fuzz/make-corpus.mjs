// Writes the seed corpus in tests/fuzz/corpus/<target>/ (run from the repository root:
// node tests/fuzz/make-corpus.mjs). The files are kept in the repository; this shows where each
// seed comes from. Inputs found by fuzzing that are worth keeping are added beside them by hand.
import { mkdirSync, writeFileSync } from "node:fs";
const root = "tests/fuzz/corpus";
const put = (target, name, data) => { mkdirSync(`${root}/${target}`, { recursive: true }); writeFileSync(`${root}/${target}/${name}`, data); };
const ISTIO = "ChoKCkNMVVNURVJfSUQSDBoKS3ViZXJuZXRlcwqUAQoGTEFCRUxTEokBKoYBChQKA2FwcBINGgtwcm9kdWN0cGFnZQowCh9zZXJ2aWNlLmlzdGlvLmlvL2Nhbm9uaWNhbC1uYW1lEg0aC3Byb2R1Y3RwYWdlCisKI3NlcnZpY2UuaXN0aW8uaW8vY2Fub25pY2FsLXJldmlzaW9uEgQaAnYxCg8KB3ZlcnNpb24SBBoCdjEKHAoETkFNRRIUGhJwcm9kdWN0cGFnZS12MS1hYmMKFgoJTkFNRVNQQUNFEgkaB2RlZmF1bHQKUgoFT1dORVISSRpHa3ViZXJuZXRlczovL2FwaXMvYXBwcy92MS9uYW1lc3BhY2VzL2RlZmF1bHQvZGVwbG95bWVudHMvcHJvZHVjdHBhZ2UtdjEKIQoNV09SS0xPQURfTkFNRRIQGg5wcm9kdWN0cGFnZS12MQ==";
const MIXED = "CgsKBWVtcHR5EgIaAAosCgRsaXN0EiQyIgoJEQAAAAAAAPA/CgUaA3R3bwoCIAAKAggACgIyAAoCKgAKDgoBbhIJEQAAAAAAAPg/CgoKBG5vbmUSAggACggKAm9rEgIgAQoVCgjQutC70Y7RhxIJGgd3ZXJ0LcO8";
const EDGE = "CgYKABICGgAKDgoBYRIJEQAAAAAAAAAACg8KAmFiEgkRAAAAAAAAAsAKBwoBYhICKgAKEAoDYmlnEgkRnHUAiDzkN34KBwoBYxICMgAKEAoD77yhEgkRAAAAAAAA8D8KEQoE8J+YgBIJEQAAAAAAAABA";
// varint and length-delimited helpers for hand-made Structs
const varint = (n) => { const out = []; while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7; } out.push(n); return Buffer.from(out); };
const ld = (field, bytes) => Buffer.concat([varint((field << 3) | 2), varint(bytes.length), bytes]);
const entry = (key, value) => ld(1, Buffer.concat([ld(1, Buffer.from(key)), ld(2, value)]));
const strValue = (s) => ld(3, Buffer.from(s));
const nested = (depth) => depth === 0 ? Buffer.alloc(0) : entry("a", ld(5, nested(depth - 1)));
const nestedList = (depth) => depth === 0 ? Buffer.alloc(0) : ld(1, ld(6, nestedList(depth - 1)));

// json
put("json", "empty-object", "{}");
put("json", "values", '{"a": [1, -2.5e3, true, false, null, "x\\u0041\\n"], "b": {"c": {}}}');
put("json", "nested-63", "[".repeat(63) + "]".repeat(63));
put("json", "nested-65", "[".repeat(65) + "]".repeat(65));
put("json", "strings", '["\\ud83d\\ude00", "\\ud800", "\\/\\b\\f\\n\\r\\t", "é✓"]');
put("json", "numbers", "[0, -0, 1e308, 1e309, 0.1, 123456789012345678901234567890, -1E-7]");
put("json", "duplicate", '{"a": 1, "a": 2}');
// config
const configs = {
  "empty": "",
  "defaults": "{}",
  "reporter": '{"reporter": "SERVER_GATEWAY", "disable_host_header_fallback": true, "tcp_reporting_duration": "500ms", "max_series": 3}',
  "custom-metrics": JSON.stringify({ metrics: [{ name: "requests_total", dimensions: { user_tier: "request.headers['x-user-tier'] | 'none'", request_method: "request.method" }, tags_to_remove: ["source_principal", "destination_principal"] }, { name: "request_bytes", drop: true }, { dimensions: { route_kind: "xds.cluster_name" } }], definitions: [{ name: "requests_seen_total", value: "1" }, { name: "response_body_bytes", value: "response.size", type: "HISTOGRAM" }] }),
  "user-dimension": JSON.stringify({ max_series: 100, metrics: [{ dimensions: { user: "request.headers['x-user']" } }] }),
  "legacy": '{"debug": "false", "stat_prefix": "istio", "field_separator": ";.;", "value_separator": "=.=", "max_peer_cache_size": 500}',
  "node-metadata": JSON.stringify({ metrics: [{ dimensions: { pod: "node.metadata['NAME'] | 'x'", app: "node.metadata['LABELS']['app']", odd: "node.metadata.ODD" } }] }),
  "bad-type": '{"reporter": 42}',
  "bad-unknown": '{"reportr": "source"}',
  "bad-range": '{"max_series": 1000001}',
  "bad-expression": JSON.stringify({ metrics: [{ dimensions: { tier: "request.headers['x" } }] }),
  "bad-suffix": JSON.stringify({ metrics: [{ dimensions: { d: "request.host" } }] }),
  "truncated": '{"metrics": [{"dimensions": {"a": "request.host"',
};
for (const [n, c] of Object.entries(configs)) put("config", n, c);
// expr: expression, then NUL-separated property values
const exprs = {
  "header-default": "request.headers['x-user'] | 'none'\u0000gold",
  "response-code": "response.code\u0000\u00c8\u0000\u0000\u0000\u0000\u0000\u0000\u0000",
  "logic": "has(request.headers['x']) && (request.headers['x'] | 'u') != 'u' && size(request.headers['x']) > 1\u0000abc",
  "methods": "request.host.startsWith('rev') || request.host.endsWith('.local') || request.host.contains('x')\u0000reviews.default.svc.cluster.local",
  "casts": "int(request.headers['content-length']) >= 100 && string(response.code) == '200'\u000012345\u0000200",
  "escapes": "'\\x41\\u00e9\\U0001F600\\101\\n' == request.headers['x']\u0000Aé😀A\n",
  "node": "node.metadata['NAME'] | node.metadata['LABELS']['app'] | 'unknown'",
  "mtls": "connection.mtls ? 'a' : 'b'",
  "path": "xds.cluster_metadata.filter_metadata.istio.services[0].name\u0000reviews",
  "nesting": "((((((((((((((((((((((((((((((((response.code))))))))))))))))))))))))))))))))",
  "ints": "-9223372036854775808 < response.code && response.code <= 9223372036854775807\u0000\u0001\u0000\u0000\u0000\u0000\u0000\u0000\u0080",
};
for (const [n, c] of Object.entries(exprs)) put("expr", n, c);
// base64
put("base64", "istio", ISTIO);
put("base64", "istio-unpadded", ISTIO.replace(/=+$/, ""));
put("base64", "mixed", MIXED);
put("base64", "edge", EDGE);
put("base64", "zeros", "AAAA");
put("base64", "garbage", "!!!not base64!!!");
put("base64", "empty", "");
// struct: raw bytes
put("struct", "istio", Buffer.from(ISTIO, "base64"));
put("struct", "mixed", Buffer.from(MIXED, "base64"));
put("struct", "edge", Buffer.from(EDGE, "base64"));
put("struct", "nested-16", nested(16));
put("struct", "nested-17", nested(17));
put("struct", "nested-list-40", ld(1, Buffer.concat([ld(1, Buffer.from("l")), ld(2, nestedList(40))])));
put("struct", "truncated", Buffer.from(ISTIO, "base64").subarray(0, 100));
put("struct", "bad-varint", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]));
put("struct", "many-keys", Buffer.concat(Array.from({ length: 200 }, (_, i) => entry(`k${i % 50}`, strValue("v" + i)))));
// peer: header value, NUL, peer id
put("peer", "istio", ISTIO + "\u0000sidecar~10.0.0.7~productpage-v1-abc.default~default.svc.cluster.local");
put("peer", "no-id", ISTIO);
put("peer", "garbage", "!!!not base64!!!\u0000bad");
put("peer", "deep", nested(30).toString("base64") + "\u0000deep");
put("peer", "endpoint-label", "reviews-v2;default;reviews;v2;Kubernetes");
// trace: traceparent, tracestate, b3, x-b3-traceid, x-b3-spanid, x-b3-parentspanid, x-b3-sampled, x-b3-flags, x-request-id
const T = (...f) => f.join("\u0000");
put("trace", "w3c", T("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
put("trace", "w3c-future", T("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-will-be-like", "a=1"));
put("trace", "b3-single", T("", "", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"));
put("trace", "b3-deny", T("", "", "0"));
put("trace", "b3-multi", T("", "", "", "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", "0020000000000001", "1", "", "f81d4fae-7dec-41d0-a765-00a0c91e6bf6"));
put("trace", "b3-multi-64", T("", "", "", "463ac35c9f6413ad", "a2fb4a1d1a96d312", "", "true", "1"));
put("trace", "conflict", T("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", "x=y", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d"));
put("trace", "duplicates", T("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01,00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "a=1,,b=2, c=3"));
put("trace", "long-tracestate", T("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Array.from({ length: 40 }, (_, i) => `k${i}=${"v".repeat(i * 4)}`).join(",")));
put("trace", "request-id-only", T("", "", "", "", "", "", "", "", "not-a-uuid\u0001"));
// label values
put("label", "plain", "gold");
put("label", "separators", "a=.=b;.;c=.=;.;");
put("label", "injection", "x;.;source_workload=.=evil");
put("label", "controls", "a\u0000b\u0001c\nd\u007f");
put("label", "edges", ".=x=.");
put("label", "unicode", "ключ-ü-😀-\uFFFD");

// headers: the serialized pairs proxy_get_header_map_pairs returns (u32 count, count x (u32 key
// length, u32 value length), then each key and value followed by NUL).

const headersDir = "tests/fuzz/corpus/headers"; mkdirSync(headersDir, { recursive: true });
const pairs = (list) => {
  const head = Buffer.alloc(4 + 8 * list.length); head.writeUInt32LE(list.length, 0);
  const data = [];
  list.forEach(([k, v], i) => { head.writeUInt32LE(Buffer.byteLength(k), 4 + 8 * i); head.writeUInt32LE(Buffer.byteLength(v), 8 + 8 * i); data.push(Buffer.from(k), Buffer.from([0]), Buffer.from(v), Buffer.from([0])); });
  return Buffer.concat([head, ...data]);
};
writeFileSync(`${headersDir}/request`, pairs([[":authority", "reviews:9080"], [":path", "/"], [":method", "GET"], ["x-request-id", "f81d4fae-7dec-41d0-a765-00a0c91e6bf6"], ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"], ["tracestate", "congo=t61rcWkgMzE"], ["x-envoy-peer-metadata-id", "sidecar~10.0.0.1~p.default~default.svc.cluster.local"], ["x-envoy-peer-metadata", "ChoKCkNMVVNURVJfSUQSDBoKS3ViZXJuZXRlcw=="]]));
writeFileSync(`${headersDir}/repeated`, pairs(Array.from({ length: 20 }, (_, i) => ["b3", `v${i}`])));
writeFileSync(`${headersDir}/empty-map`, pairs([]));
writeFileSync(`${headersDir}/empty-values`, pairs([["a", ""], ["b3", ""], ["", ""]]));
const lying = pairs([["traceparent", "x"]]); lying.writeUInt32LE(1000, 8); writeFileSync(`${headersDir}/length-past-end`, lying);
const count = pairs([["a", "b"]]); count.writeUInt32LE(0x7fffffff, 0); writeFileSync(`${headersDir}/count-huge`, count);
writeFileSync(`${headersDir}/truncated`, pairs([["x-request-id", "abc"]]).subarray(0, 14));

// otlp: collector answers (ExportTraceServiceResponse) and span strings split at NUL
put("otlp", "empty", "");
put("otlp", "partial-success", Buffer.from("0a05080112017a", "hex"));
put("otlp", "unknown-fields", Buffer.from("1801210000000000000000" + "2d00000000" + "3200" + "0a0308ac02", "hex"));
put("otlp", "json-answer", '{"partialSuccess":{}}');
put("otlp", "span-strings", ["reviews:9080/reviews/0", "/reviews/0?x=1", "reviews:9080", "mtw=1,congo=t61rcWkgMzE", "GET", "10.0.0.7", "istio.namespace", "default", "reviews", "bookinfo"].join("\0"));
put("otlp", "surrogates", ["a\ud800b", "/\ud83d\ude00", "[::1]:80", "", "\udc00"].join("\0"));
