import {
  AttributeSource, Expr, StaticType, Truth, evaluateToBool, evaluateToInt, evaluateToString,
} from "../../../assembly/expr/ast";
import {
  ConstantResolver, MAX_EXPRESSION_LENGTH, MAX_NESTING, NoConstants, compileExpression, missingExpression,
} from "../../../assembly/expr/parser";

// A fake host: NUL-joined property paths mapped to the bytes Envoy would serialize, with a log
// of every read so the specs can count host calls.
class FakeSource extends AttributeSource {
  keys: string[] = [];
  values: ArrayBuffer[] = [];
  reads: string[] = [];

  /** Sets a path given with '.' between segments (segments without dots). */
  raw(dotted: string, value: ArrayBuffer): FakeSource {
    return this.rawPath(dotted.split("."), value);
  }

  rawPath(segments: string[], value: ArrayBuffer): FakeSource {
    this.keys.push(segments.join("\0"));
    this.values.push(value);
    return this;
  }

  str(dotted: string, value: string): FakeSource {
    return this.raw(dotted, String.UTF8.encode(value));
  }

  int(dotted: string, value: i64): FakeSource {
    return this.raw(dotted, intBytes(value));
  }

  bool(dotted: string, value: bool): FakeSource {
    const b = new Uint8Array(1);
    b[0] = value ? 1 : 0;
    return this.raw(dotted, b.buffer);
  }

  property(path: ArrayBuffer): ArrayBuffer | null {
    const key = String.UTF8.decode(path);
    this.reads.push(key.replaceAll("\0", "."));
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) return this.values[i];
    }
    return null;
  }
}

/** An int64 the way Envoy serializes it: 8 bytes, little-endian. */
function intBytes(v: i64): ArrayBuffer {
  const b = new Uint8Array(8);
  for (let k = 0; k < 8; k++) b[k] = <u8>((<u64>v >> (<u64>k * 8)) & 0xff);
  return b.buffer;
}

class Resolver extends ConstantResolver {
  calls: i32 = 0;

  nodeMetadata(key: string): string | null {
    this.calls++;
    if (key == "NAME") return "productpage-v1-abc";
    if (key == "NAMESPACE") return "default";
    if (key == "EMPTY") return "";
    return null;
  }

  nodeMetadataPath(keys: string[]): string | null {
    if (keys.length == 2 && keys[0] == "LABELS" && keys[1] == "app") return "productpage";
    return super.nodeMetadataPath(keys);
  }
}

const RESOLVER = new Resolver();

function compile(text: string): Expr {
  const r = compileExpression(text, RESOLVER);
  expect(r.error).toBe("", text);
  expect(r.pos).toBe(-1, text);
  return r.expr!;
}

/** The compile error of `text`, checking that it ends with the position it reports. */
function err(text: string): string {
  const r = compileExpression(text, RESOLVER);
  expect(r.expr).toBeNull(text);
  expect(r.pos).toBeGreaterThanOrEqual(0, text);
  expect(r.pos).toBeLessThanOrEqual(text.length, text);
  expect(r.error.endsWith(" at " + r.pos.toString())).toBe(true, r.error);
  return r.error;
}

function evalStr(text: string, src: FakeSource): string {
  const v = evaluateToString(compile(text), src);
  return v === null ? "<missing>" : v;
}

function evalBool(text: string, src: FakeSource): Truth {
  return evaluateToBool(compile(text), src);
}

function evalInt(text: string, src: FakeSource): string {
  const r = evaluateToInt(compile(text), src);
  return r.present ? r.value.toString() : "<missing>";
}

/** A typical request as Envoy would serve its attributes at log time. */
function request(): FakeSource {
  return new FakeSource()
    .str("request.host", "reviews.default.svc.cluster.local")
    .str("request.method", "GET")
    .str("request.path", "/api/v1/reviews?id=7")
    .str("request.url_path", "/api/v1/reviews")
    .str("request.protocol", "HTTP/1.1")
    .str("request.id", "4f1c9b1e-8a0c-4c7e-9d2e-0c2b1a3f9e11")
    .str("request.useragent", "curl/8.5.0")
    .str("request.scheme", "http")
    .int("request.size", 0)
    .int("request.total_size", 512)
    .int("request.duration", 12500000) // 12.5 ms in ns
    .int("response.code", 200)
    .int("response.flags", 0)
    .int("response.grpc_status", 0)
    .int("response.size", 1234)
    .int("response.total_size", 1500)
    .str("response.code_details", "via_upstream")
    .str("upstream.address", "10.0.0.7:9080")
    .int("upstream.port", 9080)
    .str("source.address", "10.0.0.3:51234")
    .int("source.port", 51234)
    .str("destination.address", "10.0.0.7:9080")
    .int("destination.port", 9080)
    .bool("connection.mtls", true)
    .str("connection.requested_server_name", "outbound_.9080_._.reviews.default.svc.cluster.local")
    .str("xds.cluster_name", "outbound|9080||reviews.default.svc.cluster.local")
    .str("xds.route_name", "default")
    .int("xds.listener_direction", 2)
    .str("xds.cluster_metadata.filter_metadata.istio.services.0.name", "reviews")
    .str("request.headers.x-user-tier", "gold")
    .str("request.headers.x-count", "42")
    .str("request.headers.x-empty", "")
    .str("plugin_name", "mesh-telemetry");
}

// xorshift32 with a fixed seed, so the hostile corpus is the same on every run.
let rngState: u32 = 0x2545f491;
function nextRandom(): u32 {
  let x = rngState;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  rngState = x;
  return x;
}

function pick(n: i32): i32 {
  return <i32>(nextRandom() % <u32>n);
}

/** Compiles hostile text and, when it compiles, evaluates it every way; returns whether it compiled. */
function compileHostile(text: string, src: FakeSource): bool {
  const r = compileExpression(text, RESOLVER);
  if (r.expr === null) {
    expect(r.error.length).toBeGreaterThan(0, text);
    expect(r.pos).toBeGreaterThanOrEqual(0, text);
    expect(r.pos).toBeLessThanOrEqual(text.length > MAX_EXPRESSION_LENGTH ? MAX_EXPRESSION_LENGTH : text.length, text);
    expect(r.error.endsWith(" at " + r.pos.toString())).toBe(true, text);
    return false;
  }
  const e = r.expr!;
  evaluateToString(e, src);
  evaluateToInt(e, src);
  evaluateToBool(e, src);
  return true;
}

describe("attribute paths", () => {
  it("encodes paths as NUL-joined UTF-8 segments", () => {
    const e = compile("request.headers['x-user-tier']");
    expect(e.paths.length).toBe(1);
    expect(String.UTF8.decode(e.paths[0])).toBe("request\0headers\0x-user-tier");
    const m = compile("xds.cluster_metadata.filter_metadata.istio.services[0].name");
    expect(String.UTF8.decode(m.paths[0])).toBe("xds\0cluster_metadata\0filter_metadata\0istio\0services\0" + "0\0name");
    expect(m.pathNames[0]).toBe("xds.cluster_metadata.filter_metadata.istio.services.0.name");
    expect(compile('request.headers["x"]').pathNames[0]).toBe("request.headers.x");
    expect(compile("filter_state['wasm.istio.peer']").pathNames[0]).toBe("filter_state.wasm.istio.peer");
    expect(compile(" request . headers [ 'a' ] ").pathNames[0]).toBe("request.headers.a");
    expect(compile("metadata.filter_metadata['envoy.lb'][12]").pathNames[0]).toBe("metadata.filter_metadata.envoy.lb.12");
    const u = compile("request.headers['ключ-ü']");
    expect(u.paths[0].byteLength).toBe(16 + 11);
  });

  it("accepts every Envoy attribute root and reads the well-known attributes", () => {
    const src = request();
    const cases: StaticArray<string> = [
      "request.host", "reviews.default.svc.cluster.local",
      "request.method", "GET",
      "request.path", "/api/v1/reviews?id=7",
      "request.url_path", "/api/v1/reviews",
      "request.protocol", "HTTP/1.1",
      "request.id", "4f1c9b1e-8a0c-4c7e-9d2e-0c2b1a3f9e11",
      "request.useragent", "curl/8.5.0",
      "request.scheme", "http",
      "request.size", "0",
      "request.total_size", "512",
      "request.duration", "12500000",
      "response.code", "200",
      "response.flags", "0",
      "response.grpc_status", "0",
      "response.size", "1234",
      "response.total_size", "1500",
      "response.code_details", "via_upstream",
      "upstream.address", "10.0.0.7:9080",
      "upstream.port", "9080",
      "upstream.local_address", "<missing>",
      "source.address", "10.0.0.3:51234",
      "source.port", "51234",
      "destination.address", "10.0.0.7:9080",
      "destination.port", "9080",
      "connection.mtls", "true",
      "connection.requested_server_name", "outbound_.9080_._.reviews.default.svc.cluster.local",
      "xds.cluster_name", "outbound|9080||reviews.default.svc.cluster.local",
      "xds.route_name", "default",
      "xds.listener_direction", "2",
      "xds.cluster_metadata.filter_metadata.istio.services[0].name", "reviews",
      "xds.cluster_metadata.filter_metadata.istio.services[1].name", "<missing>",
      "metadata.filter_metadata.istio.x", "<missing>",
      "filter_state['x']", "<missing>",
      "plugin_name", "mesh-telemetry",
      "plugin_root_id", "<missing>",
      "plugin_vm_id", "<missing>",
    ];
    for (let i = 0; i < cases.length; i += 2) {
      expect(evalStr(cases[i], src)).toBe(cases[i + 1], cases[i]);
    }
  });

  it("refuses unknown roots, naming the position", () => {
    expect(err("requst.host")).toBe("unknown attribute root 'requst' at 0");
    expect(err("request.host == reqest.host")).toBe("unknown attribute root 'reqest' at 16");
    expect(err("headers['x']")).toBe("unknown attribute root 'headers' at 0");
  });

  it("reads each distinct attribute once per evaluation", () => {
    const src = request();
    const e = compile("request.host == 'a' || request.host == 'b' || request.host.startsWith('rev')");
    expect(e.paths.length).toBe(1);
    expect(evaluateToBool(e, src)).toBe(Truth.True);
    expect(src.reads.length).toBe(1);
    // A new evaluation reads again (and sees new values).
    expect(evaluateToBool(e, src)).toBe(Truth.True);
    expect(src.reads.length).toBe(2);
    const other = new FakeSource().str("request.host", "b");
    expect(evaluateToBool(e, other)).toBe(Truth.True);
    expect(evaluateToBool(e, new FakeSource())).toBe(Truth.Missing);
    // The same attribute in `|`, a comparison and has().
    const d = compile("has(request.headers['x']) && (request.headers['x'] | 'u') != 'u' && size(request.headers['x']) > 1");
    const s2 = new FakeSource().str("request.headers.x", "abc");
    expect(evaluateToBool(d, s2)).toBe(Truth.True);
    expect(s2.reads.length).toBe(1);
  });

  it("does not read attributes whose value cannot change the result", () => {
    const src = request();
    expect(evalBool("request.method == 'POST' && request.host == 'x'", src)).toBe(Truth.False);
    expect(src.reads.join(",")).toBe("request.method");
    src.reads = [];
    expect(evalBool("request.method == 'GET' || request.host == 'x'", src)).toBe(Truth.True);
    expect(src.reads.join(",")).toBe("request.method");
    src.reads = [];
    expect(evalStr("request.headers['x-user-tier'] | request.host | 'unknown'", src)).toBe("gold");
    expect(src.reads.join(",")).toBe("request.headers.x-user-tier");
    src.reads = [];
    expect(evalBool("request.headers['nope'] == 'a' && request.host == 'x'", src)).toBe(Truth.False);
    expect(src.reads.join(",")).toBe("request.headers.nope,request.host");
  });
});

describe("literals", () => {
  it("reads strings with escapes", () => {
    const src = new FakeSource();
    expect(evalStr("'plain'", src)).toBe("plain");
    expect(evalStr('"double"', src)).toBe("double");
    expect(evalStr("'it\\'s'", src)).toBe("it's");
    expect(evalStr('"a\\"b"', src)).toBe('a"b');
    expect(evalStr("'\"'", src)).toBe('"');
    expect(evalStr("'back\\\\slash'", src)).toBe("back\\slash");
    expect(evalStr("'\\x41\\u00e9\\U0001F600\\101\\n\\t\\`\\?'", src)).toBe("A\u00e9\u{1F600}A\n\t`?");
    expect(evalStr("'\\a\\b\\f\\r\\v'", src)).toBe("\x07\x08\x0c\r\x0b");
    expect(evalStr("''", src)).toBe("");
    expect(evalStr("'ключ'", src)).toBe("ключ");
    expect(src.reads.length).toBe(0);
  });

  it("reads integers across the i64 range", () => {
    const src = new FakeSource();
    expect(evalStr("0", src)).toBe("0");
    expect(evalStr("-0", src)).toBe("0");
    expect(evalStr("200", src)).toBe("200");
    expect(evalStr("-42", src)).toBe("-42");
    expect(evalStr("9223372036854775807", src)).toBe("9223372036854775807");
    expect(evalStr("-9223372036854775808", src)).toBe("-9223372036854775808");
    expect(evalInt("-9223372036854775808", src)).toBe("-9223372036854775808");
  });

  it("reads true, false and null", () => {
    const src = new FakeSource();
    expect(evalStr("true", src)).toBe("true");
    expect(evalStr("false", src)).toBe("false");
    expect(evalStr("null", src)).toBe("<missing>");
    expect(evalBool("null == null", src)).toBe(Truth.True);
    expect(evalBool("null != 'x'", src)).toBe(Truth.True);
    expect(evalBool("request.host == null", request())).toBe(Truth.False);
    expect(compile("null").type).toBe(StaticType.Null);
  });
});

describe("the | default operator", () => {
  it("yields the right side when the left attribute is missing", () => {
    const src = request();
    expect(evalStr("request.headers['x-user-tier'] | 'unknown'", src)).toBe("gold");
    expect(evalStr("request.headers['x-absent'] | 'unknown'", src)).toBe("unknown");
    expect(evalStr("request.headers['a'] | request.headers['b'] | 'none'", src)).toBe("none");
    expect(evalStr("request.headers['a'] | request.headers['x-user-tier'] | 'none'", src)).toBe("gold");
    expect(evalStr("request.headers['a'] | request.headers['b']", src)).toBe("<missing>");
  });

  it("keeps a present empty value", () => {
    expect(evalStr("request.headers['x-empty'] | 'unknown'", request())).toBe("");
  });

  it("replaces errors as well as absent attributes", () => {
    const src = request();
    expect(evalStr("int(request.host) | -1", src)).toBe("-1");
    expect(evalStr("response.code | 0", new FakeSource().raw("response.code", new ArrayBuffer(4)))).toBe("0");
  });

  it("mixes types: the result's type is dynamic", () => {
    const e = compile("response.code | 'none'");
    expect(e.type).toBe(StaticType.Dyn);
    expect(evaluateToString(e, request())).toBe("200");
    expect(evaluateToString(e, new FakeSource())).toBe("none");
    expect(compile("request.host | 'x'").type).toBe(StaticType.String);
    expect(evalBool("(response.code | 'none') == 200", request())).toBe(Truth.True);
    expect(evalBool("(response.code | 'none') == 200", new FakeSource())).toBe(Truth.False);
    expect(evalBool("(response.code | 'none') < 300", new FakeSource())).toBe(Truth.Missing);
  });

  it("keeps a literal null (only missing values are replaced)", () => {
    expect(evalStr("null | 'x'", new FakeSource())).toBe("<missing>");
  });
});

describe("operators", () => {
  it("compares ints, strings and bools", () => {
    const src = request();
    expect(evalBool("response.code == 200", src)).toBe(Truth.True);
    expect(evalBool("response.code != 200", src)).toBe(Truth.False);
    expect(evalBool("response.code >= 200 && response.code < 300", src)).toBe(Truth.True);
    expect(evalBool("response.code > 200", src)).toBe(Truth.False);
    expect(evalBool("response.code <= 199", src)).toBe(Truth.False);
    expect(evalBool("request.method == 'GET'", src)).toBe(Truth.True);
    expect(evalBool("request.method == \"GE\"", src)).toBe(Truth.False);
    expect(evalBool("'a' < 'b'", src)).toBe(Truth.True);
    expect(evalBool("'ab' > 'a'", src)).toBe(Truth.True);
    expect(evalBool("'' < 'a'", src)).toBe(Truth.True);
    expect(evalBool("'\u00e9' > 'z'", src)).toBe(Truth.True);
    expect(evalBool("'b' <= 'b'", src)).toBe(Truth.True);
    expect(evalBool("false < true", src)).toBe(Truth.True);
    expect(evalBool("connection.mtls == true", src)).toBe(Truth.True);
    expect(evalBool("-1 < 0", src)).toBe(Truth.True);
    expect(evalBool("-9223372036854775808 < 9223372036854775807", src)).toBe(Truth.True);
  });

  it("applies &&, || and ! with CEL's handling of missing operands", () => {
    const src = request();
    expect(evalBool("!connection.mtls", src)).toBe(Truth.False);
    expect(evalBool("!!connection.mtls", src)).toBe(Truth.True);
    expect(evalBool("!(response.code == 404)", src)).toBe(Truth.True);
    // A missing operand is absorbed by the deciding value, otherwise the result is missing.
    expect(evalBool("request.headers['n'] == 'a' || request.method == 'GET'", src)).toBe(Truth.True);
    expect(evalBool("request.headers['n'] == 'a' || request.method == 'PUT'", src)).toBe(Truth.Missing);
    expect(evalBool("request.headers['n'] == 'a' && request.method == 'PUT'", src)).toBe(Truth.False);
    expect(evalBool("request.headers['n'] == 'a' && request.method == 'GET'", src)).toBe(Truth.Missing);
    expect(evalBool("!(request.headers['n'] == 'a')", src)).toBe(Truth.Missing);
    expect(evalBool("request.headers['n'] == 'a'", src)).toBe(Truth.Missing);
    expect(evalBool("request.headers['n'] < 'a'", src)).toBe(Truth.Missing);
  });

  it("orders precedence | < || < && < comparisons < ! ", () => {
    const src = request();
    expect(evalBool("true || false && false", src)).toBe(Truth.True);
    expect(evalBool("false && false || true", src)).toBe(Truth.True);
    expect(evalBool("!false && false", src)).toBe(Truth.False);
    expect(evalBool("1 < 2 && 3 > 2", src)).toBe(Truth.True);
    expect(evalBool("response.code == 200 || response.code == 404 && false", src)).toBe(Truth.True);
    expect(evalBool("(response.code == 200 || response.code == 404) && false", src)).toBe(Truth.False);
    // `|` binds loosest: this is headers['x'] | ('unknown' == 'unknown').
    expect(evalStr("request.headers['x'] | 'unknown' == 'unknown'", src)).toBe("true");
    expect(evalStr("request.headers['x-user-tier'] | 'unknown' == 'unknown'", src)).toBe("gold");
    expect(evalStr("(request.headers['x'] | 'unknown') == 'unknown'", src)).toBe("true");
    expect(evalStr("request.headers['x'] == 'a' || true | 'd'", src)).toBe("true");
    // `!` binds tighter than `==`, so it applies to request.host alone.
    expect(err("!request.host == 'a'")).toBe("'!' needs a bool operand, got string at 1");
    expect(evalBool("!(request.host == 'a')", src)).toBe(Truth.True);
  });
});

describe("types", () => {
  it("reads ints as 8 little-endian bytes and compares them with int literals", () => {
    const src = request();
    expect(compile("response.code").type).toBe(StaticType.Int);
    expect(evalBool("string(response.code) == \"200\"", src)).toBe(Truth.True);
    expect(evalBool("string(response.code) == '200' && response.code == 200", src)).toBe(Truth.True);
    expect(evalInt("response.code", src)).toBe("200");
    expect(evalBool("request.duration > 10000000", src)).toBe(Truth.True);
    expect(evalBool("xds.listener_direction == 2", src)).toBe(Truth.True);
    expect(evalBool("upstream.port == 9080 && destination.port == 9080", src)).toBe(Truth.True);
    expect(evalStr("response.code", new FakeSource().int("response.code", -1))).toBe("-1");
    expect(evalStr("request.total_size", new FakeSource().int("request.total_size", 0x0102030405060708))).toBe("72623859790382856");
    expect(evalStr("response.flags", new FakeSource().int("response.flags", i64.MIN_VALUE))).toBe("-9223372036854775808");
    expect(evalStr("connection.id", new FakeSource().int("connection.id", 77))).toBe("77");
  });

  it("treats a wrongly sized int or bool as missing", () => {
    const four = new FakeSource().raw("response.code", new ArrayBuffer(4));
    expect(evalStr("response.code", four)).toBe("<missing>");
    expect(evalBool("response.code == 200", four)).toBe(Truth.Missing);
    expect(evalBool("has(response.code)", four)).toBe(Truth.True);
    const wide = new FakeSource().raw("connection.mtls", new ArrayBuffer(8));
    expect(evalStr("connection.mtls", wide)).toBe("<missing>");
  });

  it("reads bools as one byte", () => {
    expect(compile("connection.mtls").type).toBe(StaticType.Bool);
    expect(evalStr("connection.mtls", new FakeSource().bool("connection.mtls", false))).toBe("false");
    expect(evalBool("connection.mtls", new FakeSource().bool("connection.mtls", true))).toBe(Truth.True);
    expect(evalStr("string(connection.mtls)", new FakeSource().bool("connection.mtls", true))).toBe("true");
  });

  it("reads unknown attributes as strings, whatever their bytes", () => {
    expect(compile("upstream.foo").type).toBe(StaticType.String);
    expect(compile("request.headers['content-length']").type).toBe(StaticType.String);
    const src = new FakeSource().raw("request.headers.x", intBytes(0x4142434445464748));
    expect(evalStr("request.headers['x']", src)).toBe("HGFEDCBA");
  });

  it("checks types at compile time", () => {
    expect(err("response.code == '200'")).toBe("cannot compare int with string at 14");
    expect(err("request.method == 1")).toBe("cannot compare string with int at 15");
    expect(err("connection.mtls == 'true'")).toBe("cannot compare bool with string at 16");
    expect(err("response.code < 'a'")).toBe("cannot compare int with string at 14");
    expect(err("null < 1")).toBe("null has no order at 5");
    expect(err("request.host && true")).toBe("'&&' needs bool operands, got string at 0");
    expect(err("true || 1")).toBe("'||' needs bool operands, got int at 8");
    expect(err("!request.host")).toBe("'!' needs a bool operand, got string at 1");
    expect(err("string(null)")).toBe("string() cannot convert null at 7");
    expect(err("int(true)")).toBe("int() cannot convert bool at 4");
    expect(err("size(1)")).toBe("size() needs a string, got int at 5");
    expect(err("response.code.startsWith('1')")).toBe("startsWith() needs a string receiver, got int at 0");
    expect(err("request.host.startsWith(1)")).toBe("startsWith() needs a string argument, got int at 24");
    expect(err("request.host.contains(true)")).toBe("contains() needs a string argument, got bool at 22");
    expect(err("response.code.size()")).toBe("size() needs a string receiver, got int at 0");
    // Where the type is only known per request, the check happens then.
    expect(evalBool("(response.code | 'x').startsWith('2')", request())).toBe(Truth.Missing);
    expect(evalBool("(response.code | 'x').startsWith('x')", new FakeSource())).toBe(Truth.True);
  });
});

describe("Istio's expressions", () => {
  it("concatenates strings and adds ints with +", () => {
    const src = request();
    expect(evalStr("'_' + node.metadata['NAME']", src)).toBe("_productpage-v1-abc");
    expect(compile("'_' + node.metadata['NAME']").isConstant()).toBe(true);
    expect(evalStr("xds.route_name + ',' + xds.cluster_name + ',' + xds.cluster_metadata.filter_metadata.istio.services[0].name", src))
      .toBe("default,outbound|9080||reviews.default.svc.cluster.local,reviews");
    expect(evalStr("request.headers['x-user-tier'] + ''", src)).toBe("gold");
    expect(evalStr("response.code + 1", src)).toBe("201");
    expect(evalStr("1 + 2 + 3", src)).toBe("6");
    expect(evalStr("9223372036854775807 + response.code", src)).toBe("<missing>");
    expect(evalStr("request.headers['nope'] + 'x'", src)).toBe("<missing>");
    expect(evalStr("(request.headers['nope'] | 'a') + 'b'", src)).toBe("ab");
    expect(evalBool("'a' + 'b' == 'ab'", src)).toBe(Truth.True);
    // + binds tighter than the comparisons and |
    expect(evalStr("request.headers['nope'] + 'x' | 'dflt'", src)).toBe("dflt");
    // A type known only per request is checked then.
    expect(evalStr("(response.code | 'x') + 'y'", src)).toBe("<missing>");
  });

  it("selects fields of node metadata maps, both ways", () => {
    const src = new FakeSource();
    expect(evalStr("xds.node.metadata['LABELS'].app", src)).toBe("productpage");
    expect(evalStr("xds.node.metadata.LABELS.app", src)).toBe("productpage");
    expect(evalStr("'_' + xds.node.metadata['LABELS'].app", src)).toBe("_productpage");
    expect(evalStr("node.metadata['LABELS']['app']", src)).toBe("productpage");
    expect(src.reads.length).toBe(0);
  });

  it("reads filter_state and list elements of cluster metadata as property paths", () => {
    expect(compile("filter_state.upstream_peer.service").pathNames[0]).toBe("filter_state.upstream_peer.service");
    expect(compile("filter_state['wasm.istio_responseClass']").pathNames[0]).toBe("filter_state.wasm.istio_responseClass");
    expect(compile("xds.cluster_metadata.filter_metadata.istio.services[0].name").pathNames[0])
      .toBe("xds.cluster_metadata.filter_metadata.istio.services.0.name");
  });

  it("tells text that does not parse from text that parses but cannot be evaluated", () => {
    // Istio drops the first kind of dimension and reports `unknown` for the second.
    const syntax: StaticArray<string> = ["cannot _ parse | 3", "request.host ==", "'a' 'b'", "x(", "foo(1) +", "cannot_evaluate.x["];
    for (let i = 0; i < syntax.length; i++) {
      const r = compileExpression(syntax[i], RESOLVER);
      expect(r.expr).toBeNull(syntax[i]);
      expect(r.syntax).toBe(true, syntax[i]);
    }
    const meaning: StaticArray<string> = [
      "cannot_evaluate", "cannot_evaluate.x['y'] | 'z'", "foo(1)", "request.host.foo()", "response.code == '200'",
      "request.host && true", "true || 1", "'a' + 1", "node.id", "string(1).x", "size(1) + bar(2)",
    ];
    for (let i = 0; i < meaning.length; i++) {
      const r = compileExpression(meaning[i], RESOLVER);
      expect(r.expr).toBeNull(meaning[i]);
      expect(r.syntax).toBe(false, meaning[i]);
      expect(r.error.length).toBeGreaterThan(0, meaning[i]);
    }
    expect(compileExpression("cannot_evaluate", RESOLVER).error).toBe("unknown attribute root 'cannot_evaluate' at 0");
    // A syntax error after an error of meaning is still a syntax error.
    const late = compileExpression("foo(1) == 'a' 'b'", RESOLVER);
    expect(late.syntax).toBe(true);
    expect(late.error).toBe("unexpected string literal at 14");
    expect(evaluateToString(missingExpression(), request())).toBeNull();
  });
});

describe("functions", () => {
  it("string()", () => {
    const src = request();
    expect(evalStr("string(-42)", src)).toBe("-42");
    expect(evalStr("string(true)", src)).toBe("true");
    expect(evalStr("string(false)", src)).toBe("false");
    expect(evalStr("string('x')", src)).toBe("x");
    expect(evalStr("string(response.size)", src)).toBe("1234");
    expect(evalStr("string(request.headers['nope'])", src)).toBe("<missing>");
    expect(evalStr("string(-9223372036854775808)", src)).toBe("-9223372036854775808");
    expect(compile("string(response.code)").type).toBe(StaticType.String);
  });

  it("int()", () => {
    const src = request();
    expect(evalStr("int('123')", src)).toBe("123");
    expect(evalStr("int('-9223372036854775808')", src)).toBe("-9223372036854775808");
    expect(evalStr("int('9223372036854775808')", src)).toBe("<missing>");
    expect(evalStr("int('12a')", src)).toBe("<missing>");
    expect(evalStr("int('')", src)).toBe("<missing>");
    expect(evalStr("int('-')", src)).toBe("<missing>");
    expect(evalStr("int(7)", src)).toBe("7");
    expect(evalBool("int(request.headers['x-count']) > 10", src)).toBe(Truth.True);
    expect(evalBool("int(request.headers['x-user-tier']) > 10", src)).toBe(Truth.Missing);
  });

  it("has()", () => {
    const src = request();
    expect(evalBool("has(request.headers['x-user-tier'])", src)).toBe(Truth.True);
    expect(evalBool("has(request.headers['x-empty'])", src)).toBe(Truth.True);
    expect(evalBool("has(request.headers['nope'])", src)).toBe(Truth.False);
    expect(evalBool("has(response.code)", src)).toBe(Truth.True);
    expect(evalBool("!has(upstream.address)", new FakeSource())).toBe(Truth.True);
    expect(evalBool("has((request.host))", src)).toBe(Truth.True);
    expect(err("has('a')")).toBe("has() needs an attribute path at 4");
    expect(err("has(request.host == 'a')")).toBe("has() needs an attribute path at 4");
    expect(err("has(string(request.host))")).toBe("has() needs an attribute path at 4");
  });

  it("size() in UTF-8 bytes, as a function and as a method", () => {
    const src = request();
    expect(evalStr("size('h\u00e9llo')", src)).toBe("6");
    expect(evalStr("size('')", src)).toBe("0");
    expect(evalStr("size(request.method)", src)).toBe("3");
    expect(evalStr("request.method.size()", src)).toBe("3");
    expect(evalStr("'abc'.size()", src)).toBe("3");
    expect(evalStr("size(request.headers['nope'])", src)).toBe("<missing>");
    expect(evalBool("size(request.path) > 5", src)).toBe(Truth.True);
  });

  it("startsWith, endsWith and contains", () => {
    const src = request();
    expect(evalBool("request.path.startsWith('/api/')", src)).toBe(Truth.True);
    expect(evalBool("request.path.startsWith('/apx')", src)).toBe(Truth.False);
    expect(evalBool("request.host.endsWith('.svc.cluster.local')", src)).toBe(Truth.True);
    expect(evalBool("request.host.endsWith('.local.')", src)).toBe(Truth.False);
    expect(evalBool("request.useragent.contains('curl')", src)).toBe(Truth.True);
    expect(evalBool("request.useragent.contains('wget')", src)).toBe(Truth.False);
    expect(evalBool("request.headers['x-user-tier'].contains('ol')", src)).toBe(Truth.True);
    expect(evalBool("'abc'.contains('')", src)).toBe(Truth.True);
    expect(evalBool("'ab'.startsWith('abc')", src)).toBe(Truth.False);
    expect(evalBool("'ab'.endsWith('abc')", src)).toBe(Truth.False);
    expect(evalBool("''.endsWith('')", src)).toBe(Truth.True);
    expect(evalBool("string(response.code).startsWith('2')", src)).toBe(Truth.True);
    expect(evalBool("request.path.startsWith(request.url_path)", src)).toBe(Truth.True);
    expect(evalBool("request.headers['nope'].startsWith('a')", src)).toBe(Truth.Missing);
    expect(evalBool("xds . cluster_name . contains ( 'reviews' )", src)).toBe(Truth.True);
  });
});

describe("node metadata", () => {
  it("is a constant resolved at compile time", () => {
    const src = new FakeSource();
    const e = compile("node.metadata['NAME']");
    expect(e.isConstant()).toBe(true);
    expect(e.paths.length).toBe(0);
    expect(evaluateToString(e, src)).toBe("productpage-v1-abc");
    expect(evalStr("xds.node.metadata['NAMESPACE']", src)).toBe("default");
    expect(evalStr("xds.node.metadata.NAMESPACE", src)).toBe("default");
    expect(evalStr("node.metadata.NAME", src)).toBe("productpage-v1-abc");
    expect(evalStr("node.metadata['EMPTY'] | 'x'", src)).toBe("");
    expect(evalStr("node.metadata['LABELS']['app']", src)).toBe("productpage");
    expect(evalStr("node.metadata.LABELS.app", src)).toBe("productpage");
    expect(evalStr("node.metadata['LABELS']['version']", src)).toBe("<missing>");
    expect(src.reads.length).toBe(0);
  });

  it("folds defaults, has() and comparisons on it", () => {
    const src = new FakeSource();
    const d = compile("node.metadata['CANONICAL_SERVICE'] | 'unknown'");
    expect(d.isConstant()).toBe(true);
    expect(evaluateToString(d, src)).toBe("unknown");
    expect(compile("has(node.metadata['NAME'])").isConstant()).toBe(true);
    expect(evalBool("has(node.metadata['NAME'])", src)).toBe(Truth.True);
    expect(evalBool("has(node.metadata['NOPE'])", src)).toBe(Truth.False);
    expect(evalBool("node.metadata['NAME'].startsWith('product')", src)).toBe(Truth.True);
    expect(evalStr("node.metadata['NOPE'] | request.headers['x-user-tier'] | 'unknown'", request())).toBe("gold");
    const f = compile("node.metadata['NAMESPACE'] == 'default' && request.host == 'h'");
    expect(f.isConstant()).toBe(false);
    expect(f.paths.length).toBe(1);
    expect(evaluateToBool(f, new FakeSource().str("request.host", "h"))).toBe(Truth.True);
    expect(compile("node.metadata['NAMESPACE'] == 'prod' && request.host == 'h'").isConstant()).toBe(true);
    expect(compile("node.metadata['NAMESPACE'] == 'default' || request.host == 'h'").isConstant()).toBe(true);
    expect(src.reads.length).toBe(0);
  });

  it("asks the resolver once per occurrence, at compile time only", () => {
    const r = new Resolver();
    const e = compileExpression("node.metadata['NAME'] + ''", r);
    expect(e.error).toBe("");
    const ok = compileExpression("node.metadata['X'] | xds.node.metadata['NAME']", r).expr!;
    expect(r.calls).toBe(3);
    expect(evaluateToString(ok, request())).toBe("productpage-v1-abc");
    expect(r.calls).toBe(3);
  });

  it("leaves other xds.node paths to the host and refuses other node paths", () => {
    expect(compile("xds.node.id").pathNames[0]).toBe("xds.node.id");
    expect(compile("xds.node").pathNames[0]).toBe("xds.node");
    expect(err("node.id")).toBe("only node.metadata is supported at 0");
    expect(err("node")).toBe("only node.metadata is supported at 0");
    expect(err("node.metadata")).toBe("node metadata needs a key, e.g. node.metadata['NAME'] at 0");
    expect(err("1 == xds.node.metadata")).toBe("node metadata needs a key, e.g. node.metadata['NAME'] at 5");
  });

  it("works without a resolver's values", () => {
    const e = compileExpression("node.metadata['NAME'] | 'unknown'", new NoConstants()).expr!;
    expect(evaluateToString(e, new FakeSource())).toBe("unknown");
  });
});

describe("evaluation results", () => {
  it("evaluateToInt", () => {
    const src = request();
    expect(evalInt("response.code", src)).toBe("200");
    expect(evalInt("request.duration", src)).toBe("12500000");
    expect(evalInt("1", src)).toBe("1");
    expect(evalInt("request.headers['x-count']", src)).toBe("42");
    expect(evalInt("'-7'", src)).toBe("-7");
    expect(evalInt("'99999999999999999999'", src)).toBe("<missing>");
    expect(evalInt("request.headers['x-user-tier']", src)).toBe("<missing>");
    expect(evalInt("connection.mtls", src)).toBe("<missing>");
    expect(evalInt("request.headers['nope']", src)).toBe("<missing>");
    expect(evalInt("null", src)).toBe("<missing>");
    expect(evalInt("response.code | 0", new FakeSource())).toBe("0");
  });

  it("evaluateToBool", () => {
    const src = request();
    expect(evalBool("true", src)).toBe(Truth.True);
    expect(evalBool("false", src)).toBe(Truth.False);
    expect(evalBool("request.host", src)).toBe(Truth.Missing);
    expect(evalBool("response.code", src)).toBe(Truth.Missing);
    expect(evalBool("null", src)).toBe(Truth.Missing);
  });

  it("evaluateToString", () => {
    const src = request();
    expect(evalStr("response.code == 200", src)).toBe("true");
    expect(evalStr("response.code", src)).toBe("200");
    expect(evalStr("request.headers['nope']", src)).toBe("<missing>");
    expect(evalStr("request.headers['x-empty']", src)).toBe("");
  });
});

describe("compile errors", () => {
  it("name the problem and its position for malformed expressions", () => {
    const cases: StaticArray<string> = [
      "", "empty expression at 0",
      "   ", "empty expression at 0",
      "request.host)", "unexpected ')' at 12",
      ")", "unexpected ')' at 0",
      "request.headers['x", "unterminated string at 16",
      "\"abc", "unterminated string at 0",
      "'abc\\", "unterminated string at 0",
      "'a\nb'", "newline in string at 2",
      "request.host ==", "unexpected end of expression at 15",
      "request.host = 'a'", "unexpected '=' (use '==') at 13",
      "(request.host", "expected ')' at 13",
      "((((", "unexpected end of expression at 4",
      "request.host == 'a' == 'b'", "comparisons do not chain (add parentheses) at 20",
      "1 < 2 < 3", "comparisons do not chain (add parentheses) at 6",
      "foo(1)", "unknown function 'foo' at 0",
      "x(", "unexpected end of expression at 2",
      "request.host.foo('a')", "unknown method 'foo' at 13",
      "string(1, 2)", "string() takes 1 argument at 0",
      "string()", "string() takes 1 argument at 0",
      "request.host.startsWith()", "startsWith() takes 1 argument at 13",
      "request.host.size(1)", "size() takes 0 arguments at 13",
      "string(1 2)", "expected ',' or ')' at 9",
      "has(request.host", "expected ')' at 16",
      "'a'.b", "field selection is only supported on attribute paths at 3",
      "string(1).x", "field selection is only supported on attribute paths at 9",
      "'abc'[0]", "indexing is only supported on attribute paths at 5",
      "request.headers[request.host]", "expected a string or integer key at 16",
      "request.headers['a'", "expected ']' at 19",
      "request.headers[-1]", "expected a string or integer key at 16",
      "request.headers[", "expected a key at 16",
      "request.headers[1.5]", "floating-point numbers are not supported at 16",
      "request.", "expected a name after '.' at 8",
      "request.5", "unexpected '5' at 8",
      "request..host", "unexpected '.' at 8",
      "1 +", "unexpected end of expression at 3",
      "'a' + + 'b'", "unexpected '+' at 6",
      "-x", "unexpected '-' at 0",
      "- 1", "unexpected '-' at 0",
      "1.5", "floating-point numbers are not supported at 0",
      "10u", "malformed number at 0",
      "0x1F", "malformed number at 0",
      "007", "leading zero in integer at 0",
      "9223372036854775808", "integer out of range at 0",
      "-9223372036854775809", "integer out of range at 0",
      "99999999999999999999999999", "integer out of range at 0",
      "'\\q'", "unknown escape '\\q' at 1",
      "'\\x4'", "malformed \\x escape at 1",
      "'\\u12G4'", "malformed \\u escape at 1",
      "'\\uD800'", "invalid code point in escape at 1",
      "'\\U00110000'", "invalid code point in escape at 1",
      "'\\UFFFFFFFF'", "invalid code point in escape at 1",
      "'\\400'", "unknown escape '\\4' at 1",
      "'\\08'", "malformed octal escape at 1",
      "r'abc'", "raw and bytes string literals are not supported at 0",
      "b\"abc\"", "raw and bytes string literals are not supported at 0",
      "'''abc'''", "triple-quoted strings are not supported at 0",
      "request.headers['a\\000b']", "NUL character in key at 16",
      "true ? 1 : 2", "unexpected '?' at 5",
      "[1, 2]", "unexpected '[' at 0",
      "{'a': 1}", "unexpected '{' at 0",
      "request.host in ['a']", "unexpected 'in' at 13",
      "request.host |", "unexpected end of expression at 14",
      "request.headers['x'] | ", "unexpected end of expression at 23",
      "true ||", "unexpected end of expression at 7",
      "true &&& false", "unexpected '&' at 7",
      "true & false", "unexpected '&' at 5",
      "true | | false", "unexpected '|' at 7",
      "request.host ! 'a'", "unexpected '!' at 13",
      "!= 1", "unexpected '!=' at 0",
      "'a' 'b'", "unexpected string literal at 4",
      "true false", "unexpected 'false' at 5",
      "\u00e9", "unexpected character U+00E9 at 0",
      "request.host == '\u00e9' && \u0001", "unexpected character U+0001 at 23",
      "request.host\u00a0== 'a'", "unexpected character U+00A0 at 12",
      "\ud83d\ude00", "unexpected character U+D83D at 0",
      ",", "unexpected ',' at 0",
      "has()", "has() takes 1 argument at 0",
      "request.method == 'GET' &&", "unexpected end of expression at 26",
    ];
    for (let i = 0; i < cases.length; i += 2) {
      expect(err(cases[i])).toBe(cases[i + 1], cases[i]);
    }
  });

  it("limits the text to 1024 characters", () => {
    const max = "'" + "a".repeat(MAX_EXPRESSION_LENGTH - 2) + "'";
    expect(evalStr("size(" + max.substring(0, max.length - 7) + "')", new FakeSource())).toBe("1016");
    expect(compile(max).isConstant()).toBe(true);
    expect(err(max + " ")).toBe("expression longer than 1024 characters at 1024");
    expect(err("x".repeat(100000))).toBe("expression longer than 1024 characters at 1024");
  });

  it("limits nesting to 32", () => {
    const n = MAX_NESTING;
    expect(evalBool("(".repeat(n) + "true" + ")".repeat(n), new FakeSource())).toBe(Truth.True);
    expect(err("(".repeat(n + 1) + "true" + ")".repeat(n + 1))).toBe("nesting deeper than 32 at 32");
    expect(evalBool("!".repeat(n) + "connection.mtls", request())).toBe(Truth.True);
    expect(err("!".repeat(n + 1) + "true")).toBe("nesting deeper than 32 at 32");
    expect(evalStr("string(".repeat(n) + "1" + ")".repeat(n), new FakeSource())).toBe("1");
    expect(err("string(".repeat(n + 1) + "1" + ")".repeat(n + 1))).toBe("nesting deeper than 32 at 230");
    expect(err("(".repeat(500))).toBe("nesting deeper than 32 at 32");
    expect(err("!".repeat(1000))).toBe("nesting deeper than 32 at 32");
    // Long flat chains are not nesting.
    const chain = "request.host == 'a'" + " || request.host == 'a'".repeat(40);
    const e = compile(chain);
    expect(e.paths.length).toBe(1);
    expect(evaluateToBool(e, new FakeSource().str("request.host", "a"))).toBe(Truth.True);
    expect(evaluateToBool(e, new FakeSource().str("request.host", "b"))).toBe(Truth.False);
    const defaults = "request.headers['h0']" + " | request.headers['h1']".repeat(40) + " | 'end'";
    expect(evalStr(defaults, new FakeSource())).toBe("end");
    expect(compile(defaults).paths.length).toBe(2);
  });
});

describe("hostile input", () => {
  it("never traps on random token soup", () => {
    const tokens: StaticArray<string> = [
      "request", "response", "connection", "node", "xds", "metadata", "filter_state", ".", "code", "host",
      "headers", "metadata", "[", "]", "'x'", "\"y\"", "'", "\"", "\\", "\\u", "\\x4", "0", "7", "200", "-",
      "9223372036854775807", "99999999999999999999", "(", ")", "|", "||", "&&", "&", "!", "==", "!=", "=",
      "<", "<=", ">", ">=", " ", "\n", "true", "false", "null", "string(", "int(", "has(", "size(",
      ".startsWith(", ".endsWith(", ".contains(", ".size()", ",", "node.metadata['NAME']",
      "node.metadata['NOPE']", "request.headers['x-user-tier']", "response.code", "connection.mtls",
      "\u00e9", "\u0000", "\ud83d", "?", "+", "1.5",
    ];
    const src = request();
    let compiled = 0;
    for (let n = 0; n < 1500; n++) {
      let text = "";
      const count = pick(14);
      for (let k = 0; k < count; k++) {
        if (pick(8) == 0) text += String.fromCharCode(pick(0x80));
        else text += tokens[pick(tokens.length)];
      }
      if (compileHostile(text, src)) compiled++;
    }
    expect(compiled).toBeGreaterThan(30);
  });

  it("never traps on mutated valid expressions", () => {
    const seeds: StaticArray<string> = [
      "request.headers['x-user-tier'] | 'unknown'",
      "string(response.code) == \"200\" && has(request.headers['x'])",
      "xds.cluster_metadata.filter_metadata.istio.services[0].name | node.metadata['NAME']",
      "!(request.path.startsWith('/api') || int(request.headers['x-count']) >= 10)",
      "size(request.host) > 3 && request.host.endsWith('.local') && connection.mtls",
      "'\\x41\\u00e9\\U0001F600\\101' != request.useragent",
    ];
    const src = request();
    const junk = "()[]'\"\\|&!=<>.,x0- \u00e9";
    let compiled = 0;
    for (let n = 0; n < 1500; n++) {
      let text = seeds[pick(seeds.length)];
      const edits = 1 + pick(4);
      for (let k = 0; k < edits; k++) {
        const at = pick(text.length + 1);
        const action = pick(3);
        const ch = junk.charAt(pick(junk.length));
        if (action == 0) text = text.substring(0, at) + text.substring(at + 1);
        else if (action == 1) text = text.substring(0, at) + ch + text.substring(at);
        else text = text.substring(0, at) + ch + text.substring(at + 1);
      }
      if (compileHostile(text, src)) compiled++;
    }
    expect(compiled).toBeGreaterThan(100);
  });

  it("never traps on random bytes from the host", () => {
    const e = compile(
      "(request.headers['a'] | string(response.code) | 'z').contains('1') || int(request.headers['a']) > 0 || " +
      "connection.mtls || size(request.headers['a']) == 3 || response.code == 200",
    );
    for (let n = 0; n < 300; n++) {
      const src = new FakeSource();
      const len = pick(12);
      const b = new Uint8Array(len);
      for (let k = 0; k < len; k++) b[k] = <u8>pick(256);
      src.raw("request.headers.a", b.buffer).raw("response.code", b.buffer).raw("connection.mtls", b.buffer);
      evaluateToString(e, src);
      evaluateToInt(e, src);
      evaluateToBool(e, src);
      expect(src.reads.length).toBeLessThanOrEqual(9);
    }
  });
});
