import {
  B3MultiValues,
  DEFAULT_TRACE_FORMATS,
  ExtractResult,
  MAX_TRACESTATE_LENGTH,
  RandomSource,
  Sampling,
  SplitMix64,
  TraceContext,
  TraceFormat,
  TraceHeaders,
  TraceOptions,
  b3TraceIdHex,
  childOf,
  decideSampling,
  extractTraceContext,
  formatB3Multi,
  formatB3Single,
  formatTraceparent,
  isLowerHex,
  isPortableTraceStateKey,
  isUsableRequestId,
  isUuidV4,
  isValidTraceStateKey,
  isValidUuid,
  lowerHexToU64,
  newId64,
  newRootContext,
  normalizeTraceState,
  parseB3Multi,
  parseB3Single,
  parseTraceparent,
  parseTraceStateMembers,
  requestIdOrNew,
  samplingThreshold,
  startSpan,
  traceStateGet,
  u128ToHex,
  u64ToHex,
  updateTraceState,
  uuidV4,
  uuidV4FromBytes,
} from "../../../assembly/trace/context";

// The W3C test suite's ids (w3c/trace-context test/test.py).
const TRACE = "12345678901234567890123456789012";
const PARENT = "1234567890123456";
const TP = "00-" + TRACE + "-" + PARENT + "-01";
const TP_OTHER = "00-12345678901234567890123456789011-" + PARENT + "-01";
// The B3 README's example.
const B3_TRACE = "80f198ee56343ba864fe8b2a57d3eff7";
const B3_SPAN = "e457b5a2e4d86bd1";
const B3_PARENT = "05e3ac9a4f6e3b90";

function tpValid(value: string): bool {
  return parseTraceparent(value) !== null;
}

function ts(value: string): string {
  const n = normalizeTraceState(value);
  return n === null ? "<invalid>" : n;
}

function headersW3C(traceparent: string, tracestate: string): TraceHeaders {
  const h = new TraceHeaders();
  h.traceparent = traceparent;
  h.tracestate = tracestate;
  return h;
}

function multi(traceId: string, spanId: string, parent: string, sampled: string, flags: string): TraceContext | null {
  return parseB3Multi(traceId, spanId, parent, sampled, flags);
}

/** A source that returns a fixed sequence, then repeats its last value. */
class Sequence extends RandomSource {
  private i: i32 = 0;
  constructor(private values: u64[]) {
    super();
  }
  next64(): u64 {
    const n = this.values.length;
    if (n == 0) return 0;
    const v = this.values[this.i < n ? this.i : n - 1];
    this.i++;
    return v;
  }
}

function repeatChar(c: string, n: i32): string {
  return c.repeat(n);
}

function samplingCount(percentage: f64, draws: i32, seed: u64): i32 {
  const rnd = new SplitMix64(seed);
  let count = 0;
  for (let i = 0; i < draws; i++) {
    if (decideSampling(Sampling.Unset, false, percentage, rnd.next64())) count++;
  }
  return count;
}

describe("hex helpers", () => {
  it("formats u64 as 16 lowercase hex digits", () => {
    expect(u64ToHex(0)).toBe("0000000000000000");
    expect(u64ToHex(0xdeadbeef)).toBe("00000000deadbeef");
    expect(u64ToHex(0xffffffffffffffff)).toBe("ffffffffffffffff");
    expect(u64ToHex(0x0123456789abcdef)).toBe("0123456789abcdef");
    expect(u128ToHex(1, 0xabc)).toBe("00000000000000010000000000000abc");
  });

  it("parses fixed-length lowercase hex in place, refusing uppercase and out-of-range spans", () => {
    expect(isLowerHex("xx0123456789abcdefyy", 2, 16)).toBe(true);
    expect<u64>(lowerHexToU64("xx0123456789abcdefyy", 2, 16)).toBe(0x0123456789abcdef);
    expect<u64>(lowerHexToU64("ff", 0, 2)).toBe(255);
    expect(isLowerHex("0123456789ABCDEF", 0, 16)).toBe(false);
    expect(isLowerHex("abc", 1, 3)).toBe(false);
    expect(isLowerHex("abc", -1, 2)).toBe(false);
    expect(isLowerHex("abc", 0, 0)).toBe(false);
    expect(isLowerHex("", 0, 1)).toBe(false);
    expect<u64>(lowerHexToU64("zz", 0, 2)).toBe(0);
    expect<u64>(lowerHexToU64("0123456789abcdef0", 0, 17)).toBe(0); // more than 16 digits
  });
});

describe("W3C traceparent", () => {
  it("reads the ids and the sampled flag", () => {
    const c = parseTraceparent(TP)!;
    expect<u64>(c.traceIdHigh).toBe(0x1234567890123456);
    expect<u64>(c.traceIdLow).toBe(0x7890123456789012);
    expect<u64>(c.spanId).toBe(0x1234567890123456);
    expect<u64>(c.parentSpanId).toBe(0);
    expect(c.sampled).toBe(Sampling.Yes);
    expect(c.traceId64).toBe(false);
    expect(c.traceIdHex()).toBe(TRACE);
    expect(c.spanIdHex()).toBe(PARENT);
    expect(parseTraceparent("00-" + TRACE + "-" + PARENT + "-00")!.sampled).toBe(Sampling.No);
    // Flags are a bit field: only the low bit means sampled.
    expect(parseTraceparent("00-" + TRACE + "-" + PARENT + "-03")!.sampled).toBe(Sampling.Yes);
    expect(parseTraceparent("00-" + TRACE + "-" + PARENT + "-02")!.sampled).toBe(Sampling.No);
    expect(parseTraceparent("00-" + TRACE + "-" + PARENT + "-ff")!.sampled).toBe(Sampling.Yes);
  });

  it("accepts the spec's example and leading/trailing OWS", () => {
    expect(tpValid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toBe(true);
    expect(tpValid(" " + TP)).toBe(true);
    expect(tpValid("\t" + TP)).toBe(true);
    expect(tpValid(TP + " ")).toBe(true);
    expect(tpValid(TP + "\t")).toBe(true);
    expect(tpValid("\t " + TP + " \t")).toBe(true);
  });

  it("refuses version 00 with extra data or trailing garbage", () => {
    expect(tpValid(TP + ".")).toBe(false);
    expect(tpValid(TP + "-what-the-future-will-be-like")).toBe(false);
    expect(tpValid(TP + "-")).toBe(false);
    expect(tpValid(TP + "0")).toBe(false);
  });

  it("reads future versions by the forward-compatible rule", () => {
    const cc = "cc-" + TRACE + "-" + PARENT + "-01";
    expect(parseTraceparent(cc)!.traceIdHex()).toBe(TRACE);
    expect(parseTraceparent(cc + "-what-the-future-will-be-like")!.traceIdHex()).toBe(TRACE);
    expect(parseTraceparent(cc + "-")!.sampled).toBe(Sampling.Yes);
    expect(tpValid(cc + ".what-the-future-will-be-like")).toBe(false);
    expect(tpValid(cc + "x")).toBe(false);
    expect(tpValid("01-" + TRACE + "-" + PARENT + "-00-x")).toBe(true);
    // Still strict about the first four fields.
    expect(tpValid("cc-" + "4BF92F3577B34DA6A3CE929D0E0E4736" + "-" + PARENT + "-01-x")).toBe(false);
    expect(tpValid("cc-" + TRACE + "-" + PARENT + "-0")).toBe(false);
    // Prohibitively large headers are refused.
    expect(tpValid(cc + "-" + repeatChar("a", 456))).toBe(true); // 512 characters
    expect(tpValid(cc + "-" + repeatChar("a", 457))).toBe(false);
  });

  it("refuses version ff and malformed versions", () => {
    expect(tpValid("ff-" + TRACE + "-" + PARENT + "-01")).toBe(false);
    expect(tpValid("ff-" + TRACE + "-" + PARENT + "-01-x")).toBe(false);
    expect(tpValid(".0-" + TRACE + "-" + PARENT + "-01")).toBe(false);
    expect(tpValid("0.-" + TRACE + "-" + PARENT + "-01")).toBe(false);
    expect(tpValid("000-" + TRACE + "-" + PARENT + "-01")).toBe(false);
    expect(tpValid("0000-" + TRACE + "-" + PARENT + "-01")).toBe(false);
    expect(tpValid("0-" + TRACE + "-" + PARENT + "-01")).toBe(false);
    expect(tpValid("CC-" + TRACE + "-" + PARENT + "-01")).toBe(false);
    expect(tpValid("0A-" + TRACE + "-" + PARENT + "-01-x")).toBe(false);
  });

  it("refuses bad trace ids", () => {
    expect(tpValid("00-00000000000000000000000000000000-" + PARENT + "-01")).toBe(false);
    expect(tpValid("00-.2345678901234567890123456789012-" + PARENT + "-01")).toBe(false);
    expect(tpValid("00-1234567890123456789012345678901.-" + PARENT + "-01")).toBe(false);
    expect(tpValid("00-123456789012345678901234567890123-" + PARENT + "-01")).toBe(false);
    expect(tpValid("00-1234567890123456789012345678901-" + PARENT + "-01")).toBe(false);
    expect(tpValid("00-4BF92F3577B34DA6A3CE929D0E0E4736-" + PARENT + "-01")).toBe(false);
    expect(tpValid("00-4bf92f3577b34da6a3ce929d0e0e473G-" + PARENT + "-01")).toBe(false);
    // A zero half is fine as long as the whole id is not zero.
    expect(tpValid("00-00000000000000000000000000000001-" + PARENT + "-01")).toBe(true);
    expect(tpValid("00-10000000000000000000000000000000-" + PARENT + "-01")).toBe(true);
  });

  it("refuses bad parent ids", () => {
    expect(tpValid("00-" + TRACE + "-0000000000000000-01")).toBe(false);
    expect(tpValid("00-" + TRACE + "-.234567890123456-01")).toBe(false);
    expect(tpValid("00-" + TRACE + "-123456789012345.-01")).toBe(false);
    expect(tpValid("00-" + TRACE + "-12345678901234567-01")).toBe(false);
    expect(tpValid("00-" + TRACE + "-123456789012345-01")).toBe(false);
    expect(tpValid("00-" + TRACE + "-00F067AA0BA902B7-01")).toBe(false);
  });

  it("refuses bad flags", () => {
    expect(tpValid("00-" + TRACE + "-" + PARENT + "-.0")).toBe(false);
    expect(tpValid("00-" + TRACE + "-" + PARENT + "-0.")).toBe(false);
    expect(tpValid("00-" + TRACE + "-" + PARENT + "-001")).toBe(false);
    expect(tpValid("00-" + TRACE + "-" + PARENT + "-1")).toBe(false);
    expect(tpValid("00-" + TRACE + "-" + PARENT + "-0A")).toBe(false);
  });

  it("refuses wrong separators, inner whitespace, empty values and duplicates", () => {
    expect(tpValid("")).toBe(false);
    expect(tpValid("   ")).toBe(false);
    expect(tpValid("00_" + TRACE + "-" + PARENT + "-01")).toBe(false);
    expect(tpValid("00-" + TRACE + "_" + PARENT + "-01")).toBe(false);
    expect(tpValid("00-" + TRACE + "-" + PARENT + "_01")).toBe(false);
    expect(tpValid("00 -" + TRACE + "-" + PARENT + "-01")).toBe(false);
    // Envoy joins repeated headers with ','.
    expect(tpValid(TP + "," + TP_OTHER)).toBe(false);
    expect(tpValid(TP + ", " + TP)).toBe(false);
    expect(tpValid("cc-" + TRACE + "-" + PARENT + "-01-x," + TP)).toBe(false);
  });
});

describe("W3C tracestate", () => {
  it("normalizes OWS and empty members", () => {
    expect(ts("foo=1,bar=2")).toBe("foo=1,bar=2");
    expect(ts("foo=1 \t , \t bar=2, \t baz=3")).toBe("foo=1,bar=2,baz=3");
    expect(ts("foo=1\t \t,\t \tbar=2,\t \tbaz=3")).toBe("foo=1,bar=2,baz=3");
    expect(ts(" foo=1")).toBe("foo=1");
    expect(ts("\tfoo=1")).toBe("foo=1");
    expect(ts("foo=1 ")).toBe("foo=1");
    expect(ts("foo=1\t")).toBe("foo=1");
    expect(ts("\t foo=1 \t")).toBe("foo=1");
    expect(ts("")).toBe("");
    expect(ts(" , ,,\t")).toBe("");
    expect(ts("foo=1,,bar=2,")).toBe("foo=1,bar=2");
    // Leading spaces of a value are part of it.
    expect(ts("foo=  1")).toBe("foo=  1");
    expect(ts("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")).toBe("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  });

  it("accepts every allowed key and value character", () => {
    const key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    const keyWithVendor = key + "@a-z0-9_-*/";
    let value = "";
    for (let c = 0x20; c <= 0x7e; c++) if (c != 0x2c && c != 0x3d) value += String.fromCharCode(c);
    expect(traceStateGet(key + "=" + value, key)).toBe(value);
    expect(traceStateGet(keyWithVendor + "=" + value, keyWithVendor)).toBe(value);
  });

  it("refuses illegal keys and values, dropping the whole list", () => {
    const bad: StaticArray<string> = [
      "foo =1", "FOO=1", "foo.bar=1", "@foo=1,bar=2", "foo=bar=baz", "foo=,bar=3", "foo", "=1", "foo=1,bar",
      "foo=a\tb", "foo=\u00e9", "foo=a\nb", "f\u00f6o=1", "_foo=1", "-foo=1", "foo=1;bar=2",
    ];
    for (let i = 0; i < bad.length; i++) expect(normalizeTraceState(bad[i])).toBeNull(bad[i]);
  });

  it("follows the current key grammar: '@' anywhere after the first character", () => {
    expect(ts("foo@=1,bar=2")).toBe("foo@=1,bar=2");
    expect(ts("foo@@bar=1,bar=2")).toBe("foo@@bar=1,bar=2");
    expect(ts("foo@bar@baz=1,bar=2")).toBe("foo@bar@baz=1,bar=2");
    expect(ts("1abc=x")).toBe("1abc=x");
    expect(isValidTraceStateKey("@foo")).toBe(false);
  });

  it("limits keys to 256 and values to 256 characters", () => {
    expect(traceStateGet("foo=1," + repeatChar("z", 256) + "=1", repeatChar("z", 256))).toBe("1");
    expect(normalizeTraceState("foo=1," + repeatChar("z", 257) + "=1")).toBeNull();
    const tenant = repeatChar("t", 241) + "@" + repeatChar("v", 14);
    expect(traceStateGet("foo=1," + tenant + "=1", tenant)).toBe("1");
    expect(traceStateGet("foo=1," + repeatChar("t", 242) + "@v=1", "foo")).toBe("1");
    expect(traceStateGet("foo=1,t@" + repeatChar("v", 15) + "=1", "foo")).toBe("1");
    expect(traceStateGet("foo=" + repeatChar("x", 256), "foo")).toBe(repeatChar("x", 256));
    expect(normalizeTraceState("foo=" + repeatChar("x", 257))).toBeNull();
  });

  it("checks our own key against Level 1's stricter grammar", () => {
    const good: StaticArray<string> = ["mtw", "rojo", "a", "foo-_*/9", "1abc@sys", "tenant@sys", repeatChar("t", 241) + "@" + repeatChar("v", 14), repeatChar("z", 256)];
    const bad: StaticArray<string> = ["", "Mtw", "1abc", "foo@", "@foo", "foo@@bar", "foo@bar@baz", "abc@1sys", repeatChar("t", 242) + "@v", "t@" + repeatChar("v", 15), repeatChar("z", 257), "a b", "a=b"];
    for (let i = 0; i < good.length; i++) expect(isPortableTraceStateKey(good[i])).toBe(true, good[i]);
    for (let i = 0; i < bad.length; i++) expect(isPortableTraceStateKey(bad[i])).toBe(false, bad[i]);
  });

  it("keeps the first (most recent) of duplicated keys", () => {
    expect(ts("foo=1,foo=1")).toBe("foo=1");
    expect(ts("foo=1,foo=2")).toBe("foo=1");
    expect(ts("foo=1,bar=2,foo=3,bar=4,baz=5")).toBe("foo=1,bar=2,baz=5");
    expect(ts("foo=1,foobar=2")).toBe("foo=1,foobar=2");
  });

  it("accepts 32 members and refuses 33", () => {
    let list = "";
    for (let i = 1; i <= 32; i++) list += (i > 1 ? "," : "") + "bar" + (i < 10 ? "0" : "") + i.toString() + "=" + i.toString();
    expect(parseTraceStateMembers(list)!.length).toBe(32);
    expect(parseTraceStateMembers(list + ",,, ,")!.length).toBe(32); // empty members do not count
    expect(parseTraceStateMembers(list + ",bar33=33")).toBeNull();
    expect(traceStateGet(list, "bar01")).toBe("1");
  });

  it("looks up values", () => {
    expect(traceStateGet("foo=1,bar=2", "bar")).toBe("2");
    expect(traceStateGet("foo=1,bar=2", "ba")).toBeNull();
    expect(traceStateGet("foo=1,bar=2", "baz")).toBeNull();
    expect(traceStateGet("FOO=1", "FOO")).toBeNull();
  });

  it("puts our entry at the left, replacing an older one and keeping the others' order", () => {
    expect(updateTraceState("", "mtw", "00f067aa0ba902b7")).toBe("mtw=00f067aa0ba902b7");
    expect(updateTraceState("rojo=1,congo=2", "mtw", "x")).toBe("mtw=x,rojo=1,congo=2");
    expect(updateTraceState("rojo=1, mtw=old ,congo=2", "mtw", "new")).toBe("mtw=new,rojo=1,congo=2");
    expect(updateTraceState("mtw=old", "mtw", "new")).toBe("mtw=new");
    expect(updateTraceState("mtwx=1", "mtw", "new")).toBe("mtw=new,mtwx=1");
    // Invalid incoming state is discarded whole.
    expect(updateTraceState("rojo=1,BAD=2", "mtw", "new")).toBe("mtw=new");
    // An invalid key or value adds nothing.
    expect(updateTraceState("rojo=1", "", "x")).toBe("rojo=1");
    expect(updateTraceState("rojo=1", "Bad", "x")).toBe("rojo=1");
    expect(updateTraceState("rojo=1", "mtw", "a,b")).toBe("rojo=1");
    expect(updateTraceState("rojo=1 , ", "mtw", "")).toBe("rojo=1");
  });

  it("bounds the output to 32 members, dropping from the right", () => {
    let list = "";
    for (let i = 1; i <= 32; i++) list += (i > 1 ? "," : "") + "k" + i.toString() + "=" + i.toString();
    const out = parseTraceStateMembers(updateTraceState(list, "mtw", "0123456789abcdef"))!;
    expect(out.length).toBe(32);
    expect(out[0]).toBe("mtw=0123456789abcdef");
    expect(out[1]).toBe("k1=1");
    expect(out[31]).toBe("k31=31");
    // Replacing an existing entry does not grow the list.
    const same = parseTraceStateMembers(updateTraceState(list, "k17", "x"))!;
    expect(same.length).toBe(32);
    expect(same[0]).toBe("k17=x");
    expect(same[31]).toBe("k32=32");
  });

  it("bounds the output to 512 characters, dropping members over 128 characters first", () => {
    let small = "";
    for (let i = 10; i < 30; i++) small += ",k" + i.toString() + "=vv"; // 20 members of 6 characters
    const a = "a=" + repeatChar("x", 200);
    const b = "b=" + repeatChar("y", 200);
    const out = updateTraceState(a + "," + b + small, "mtw", "0123456789abcdef");
    expect(out.length).toBeLessThanOrEqual(MAX_TRACESTATE_LENGTH);
    expect(out).toBe("mtw=0123456789abcdef," + a + small);
    // Without large members, members go from the right until it fits.
    let list = "";
    for (let i = 10; i < 40; i++) list += (i > 10 ? "," : "") + "k" + i.toString() + "=" + repeatChar("v", 16); // 20 characters each
    const fit = updateTraceState(list, "mtw", "0123456789abcdef");
    const members = parseTraceStateMembers(fit)!;
    expect(fit.length).toBeLessThanOrEqual(MAX_TRACESTATE_LENGTH);
    expect(members.length).toBe(24); // 20 + 23 * 21 = 503; one more would be 524
    expect(members[0]).toBe("mtw=0123456789abcdef");
    expect(members[23]).toBe("k32=" + repeatChar("v", 16));
  });

  it("never drops our own entry, even when it alone is long", () => {
    const key = repeatChar("k", 256);
    const out = updateTraceState("a=" + repeatChar("x", 250) + ",b=2", key, repeatChar("v", 256));
    expect(out).toBe(key + "=" + repeatChar("v", 256));
  });
});

describe("B3 multiple headers", () => {
  it("reads 128-bit ids, the parent and the sampling state", () => {
    const c = multi(B3_TRACE, B3_SPAN, B3_PARENT, "1", "")!;
    expect(c.traceIdHex()).toBe(B3_TRACE);
    expect(c.spanIdHex()).toBe(B3_SPAN);
    expect(u64ToHex(c.parentSpanId)).toBe(B3_PARENT);
    expect(c.sampled).toBe(Sampling.Yes);
    expect(c.debug).toBe(false);
    expect(c.traceId64).toBe(false);
    expect(c.hasIds()).toBe(true);
  });

  it("reads 64-bit trace ids as the low half, left-padded for W3C", () => {
    const c = multi("463ac35c9f6413ad", "a2fb4a1d1a96d312", "", "0", "")!;
    expect<u64>(c.traceIdHigh).toBe(0);
    expect<u64>(c.traceIdLow).toBe(0x463ac35c9f6413ad);
    expect(c.traceId64).toBe(true);
    expect(c.traceIdHex()).toBe("0000000000000000463ac35c9f6413ad");
    expect(b3TraceIdHex(c)).toBe("463ac35c9f6413ad");
    expect(c.sampled).toBe(Sampling.No);
    expect<u64>(c.parentSpanId).toBe(0);
    // A 128-bit id whose high half is zero stays 128-bit.
    const wide = multi("0000000000000000463ac35c9f6413ad", "a2fb4a1d1a96d312", "", "", "")!;
    expect(wide.traceId64).toBe(false);
    expect(b3TraceIdHex(wide)).toBe("0000000000000000463ac35c9f6413ad");
  });

  it("reads sampled as 1/0/true/false and absent as defer", () => {
    expect(multi(B3_TRACE, B3_SPAN, "", "true", "")!.sampled).toBe(Sampling.Yes);
    expect(multi(B3_TRACE, B3_SPAN, "", "false", "")!.sampled).toBe(Sampling.No);
    expect(multi(B3_TRACE, B3_SPAN, "", "", "")!.sampled).toBe(Sampling.Unset);
    expect(multi(B3_TRACE, B3_SPAN, "", " 1 ", "")!.sampled).toBe(Sampling.Yes);
    expect(multi(B3_TRACE, B3_SPAN, "", "True", "")).toBeNull();
    expect(multi(B3_TRACE, B3_SPAN, "", "2", "")).toBeNull();
    expect(multi(B3_TRACE, B3_SPAN, "", "d", "")).toBeNull();
    expect(multi(B3_TRACE, B3_SPAN, "", "1,1", "")).toBeNull();
  });

  it("treats x-b3-flags: 1 as debug, which implies sampled; other flags are ignored", () => {
    const d = multi(B3_TRACE, B3_SPAN, "", "", "1")!;
    expect(d.debug).toBe(true);
    expect(d.sampled).toBe(Sampling.Yes);
    expect(d.isSampled()).toBe(true);
    expect(multi(B3_TRACE, B3_SPAN, "", "0", "1")!.isSampled()).toBe(true);
    expect(multi(B3_TRACE, B3_SPAN, "", "0", "0")!.debug).toBe(false);
    expect(multi(B3_TRACE, B3_SPAN, "", "", "2")!.debug).toBe(false);
  });

  it("accepts a sampling decision without ids", () => {
    const deny = multi("", "", "", "0", "")!;
    expect(deny.hasIds()).toBe(false);
    expect(deny.sampled).toBe(Sampling.No);
    const debug = multi("", "", "", "", "1")!;
    expect(debug.hasIds()).toBe(false);
    expect(debug.debug).toBe(true);
    // Nothing (or only an ignored flags value) is absent, not a context.
    expect(multi("", "", "", "", "")).toBeNull();
    expect(multi("", "", "", "", "0")).toBeNull();
  });

  it("refuses malformed ids", () => {
    expect(multi(B3_TRACE.toUpperCase(), B3_SPAN, "", "1", "")).toBeNull();
    expect(multi("463ac35c9f6413a", B3_SPAN, "", "1", "")).toBeNull(); // 15
    expect(multi("463ac35c9f6413add", B3_SPAN, "", "1", "")).toBeNull(); // 17
    expect(multi(B3_TRACE.substring(1), B3_SPAN, "", "1", "")).toBeNull(); // 31
    expect(multi(B3_TRACE + "0", B3_SPAN, "", "1", "")).toBeNull(); // 33
    expect(multi("0000000000000000", B3_SPAN, "", "1", "")).toBeNull();
    expect(multi(B3_TRACE, "0000000000000000", "", "1", "")).toBeNull();
    expect(multi(B3_TRACE, "", "", "1", "")).toBeNull();
    expect(multi("", B3_SPAN, "", "1", "")).toBeNull();
    expect(multi(B3_TRACE, B3_SPAN.substring(1), "", "1", "")).toBeNull();
    expect(multi(B3_TRACE, B3_SPAN, "-", "1", "")).toBeNull();
    expect(multi(B3_TRACE, B3_SPAN, B3_PARENT.toUpperCase(), "1", "")).toBeNull();
    expect(multi("", "", B3_PARENT, "1", "")).toBeNull();
    expect(multi(B3_TRACE + "," + B3_TRACE, B3_SPAN, "", "1", "")).toBeNull();
    expect(multi(B3_TRACE, B3_SPAN + "," + B3_SPAN, "", "1", "")).toBeNull();
  });

  it("reads an all-zero parent as no parent", () => {
    const c = multi(B3_TRACE, B3_SPAN, "0000000000000000", "1", "")!;
    expect<u64>(c.parentSpanId).toBe(0);
  });
});

describe("B3 single header", () => {
  it("reads every form with ids", () => {
    const full = parseB3Single(B3_TRACE + "-" + B3_SPAN + "-1-" + B3_PARENT)!;
    expect(full.traceIdHex()).toBe(B3_TRACE);
    expect(full.spanIdHex()).toBe(B3_SPAN);
    expect(u64ToHex(full.parentSpanId)).toBe(B3_PARENT);
    expect(full.sampled).toBe(Sampling.Yes);
    const noParent = parseB3Single(B3_TRACE + "-" + B3_SPAN + "-0")!;
    expect(noParent.sampled).toBe(Sampling.No);
    expect<u64>(noParent.parentSpanId).toBe(0);
    const deferred = parseB3Single(B3_TRACE + "-" + B3_SPAN)!;
    expect(deferred.sampled).toBe(Sampling.Unset);
    expect(deferred.hasIds()).toBe(true);
    const debug = parseB3Single(B3_TRACE + "-" + B3_SPAN + "-d")!;
    expect(debug.debug).toBe(true);
    expect(debug.isSampled()).toBe(true);
    const short = parseB3Single("e457b5a2e4d86bd1-" + B3_SPAN + "-1")!;
    expect(short.traceId64).toBe(true);
    expect(short.traceIdHex()).toBe("0000000000000000e457b5a2e4d86bd1");
    expect(parseB3Single(" " + B3_TRACE + "-" + B3_SPAN + "-1 ")).not.toBeNull();
  });

  it("reads the sampling state alone: b3: 0, 1, d", () => {
    const deny = parseB3Single("0")!;
    expect(deny.hasIds()).toBe(false);
    expect(deny.sampled).toBe(Sampling.No);
    expect(parseB3Single("1")!.sampled).toBe(Sampling.Yes);
    expect(parseB3Single("d")!.debug).toBe(true);
    expect(parseB3Single("2")).toBeNull();
    expect(parseB3Single("D")).toBeNull();
    expect(parseB3Single("true")).toBeNull();
    expect(parseB3Single("0,0")).toBeNull();
    expect(parseB3Single("")).toBeNull();
  });

  it("refuses malformed values", () => {
    const t = B3_TRACE;
    const s = B3_SPAN;
    const bad: StaticArray<string> = [
      t, t + "-", t + "-" + s + "-", t + "-" + s + "-x", t + "-" + s + "-true", t + "-" + s + "-11",
      t + "-" + s + "-1-", t + "-" + s + "-1-" + B3_PARENT.substring(1), t + "-" + s + "-1-" + B3_PARENT + "-x",
      t + "-" + s + "-1-" + B3_PARENT + "0", t + "-" + s + "--" + B3_PARENT, t + "-" + s + "-" + B3_PARENT,
      t.toUpperCase() + "-" + s + "-1", t + "-" + s.toUpperCase() + "-1", t + "-" + s + "-1-" + B3_PARENT.toUpperCase(),
      "00000000000000000000000000000000-" + s + "-1", t + "-0000000000000000-1", t.substring(2) + "-" + s + "-1",
      t + "-" + s.substring(1) + "-1", "-" + s + "-1", t + "-" + s + "-1," + t + "-" + s + "-1", t + " -" + s,
    ];
    for (let i = 0; i < bad.length; i++) expect(parseB3Single(bad[i])).toBeNull(bad[i]);
  });

  it("reads an all-zero parent as no parent", () => {
    expect<u64>(parseB3Single(B3_TRACE + "-" + B3_SPAN + "-1-0000000000000000")!.parentSpanId).toBe(0);
  });
});

describe("extraction precedence", () => {
  it("gives no context and no flags without headers", () => {
    const r = extractTraceContext(new TraceHeaders());
    expect(r.context).toBeNull();
    expect(r.format).toBe(TraceFormat.None);
    expect(r.invalid).toBe(false);
    expect(r.conflict).toBe(false);
    expect(r.sampled).toBe(Sampling.Unset);
    expect(DEFAULT_TRACE_FORMATS.length).toBe(3);
  });

  it("reads W3C with its tracestate", () => {
    const r = extractTraceContext(headersW3C(TP, "rojo=1 , congo=2"));
    expect(r.format).toBe(TraceFormat.W3C);
    expect(r.context!.traceIdHex()).toBe(TRACE);
    expect(r.context!.traceState).toBe("rojo=1,congo=2");
    expect(r.sampled).toBe(Sampling.Yes);
    expect(r.samplingFormat).toBe(TraceFormat.W3C);
    expect(r.invalid).toBe(false);
  });

  it("prefers W3C, then B3 single, then B3 multi by default, flagging disagreeing trace ids", () => {
    const h = headersW3C(TP, "");
    h.b3 = B3_TRACE + "-" + B3_SPAN + "-0";
    h.xB3TraceId = B3_TRACE;
    h.xB3SpanId = B3_SPAN;
    let r = extractTraceContext(h);
    expect(r.format).toBe(TraceFormat.W3C);
    expect(r.conflict).toBe(true);
    expect(r.invalid).toBe(false);
    h.traceparent = "";
    r = extractTraceContext(h);
    expect(r.format).toBe(TraceFormat.B3Single);
    expect(r.conflict).toBe(false); // b3 and x-b3-* agree
    expect(r.sampled).toBe(Sampling.No);
    h.b3 = "";
    r = extractTraceContext(h);
    expect(r.format).toBe(TraceFormat.B3Multi);
    expect(r.sampled).toBe(Sampling.Unset);
  });

  it("does not flag formats that agree, including a 64-bit B3 id with the same low half", () => {
    const h = headersW3C(TP, "");
    h.b3 = TRACE + "-" + B3_SPAN + "-1";
    expect(extractTraceContext(h).conflict).toBe(false);
    h.b3 = "7890123456789012-" + B3_SPAN + "-1"; // the low half of TRACE
    expect(extractTraceContext(h).conflict).toBe(false);
    h.b3 = "7890123456789013-" + B3_SPAN + "-1";
    expect(extractTraceContext(h).conflict).toBe(true);
  });

  it("follows a configured order, skipping formats not listed", () => {
    const h = headersW3C(TP, "");
    h.xB3TraceId = B3_TRACE;
    h.xB3SpanId = B3_SPAN;
    h.xB3Sampled = "1";
    const r = extractTraceContext(h, [TraceFormat.B3Multi, TraceFormat.W3C]);
    expect(r.format).toBe(TraceFormat.B3Multi);
    expect(r.context!.traceIdHex()).toBe(B3_TRACE);
    expect(r.conflict).toBe(true);
    // Only B3: a broken traceparent is not even read.
    h.traceparent = "garbage";
    const onlyB3 = extractTraceContext(h, [TraceFormat.B3Multi]);
    expect(onlyB3.invalid).toBe(false);
    expect(onlyB3.conflict).toBe(false);
    // Only W3C: B3 headers are ignored.
    h.traceparent = "";
    expect(extractTraceContext(h, [TraceFormat.W3C]).context).toBeNull();
    // Repeated and unknown entries are skipped.
    const odd = extractTraceContext(h, [TraceFormat.None, <TraceFormat>7, TraceFormat.B3Multi, TraceFormat.B3Multi]);
    expect(odd.format).toBe(TraceFormat.B3Multi);
    expect(extractTraceContext(h, []).context).toBeNull();
  });

  it("treats invalid input as absent and flags it, so the next valid format wins", () => {
    const h = headersW3C("00-" + "4BF92F3577B34DA6A3CE929D0E0E4736" + "-" + PARENT + "-01", "rojo=1");
    h.b3 = B3_TRACE + "-" + B3_SPAN + "-1";
    const r = extractTraceContext(h);
    expect(r.format).toBe(TraceFormat.B3Single);
    expect(r.invalid).toBe(true);
    expect(r.isInvalid(TraceFormat.W3C)).toBe(true);
    expect(r.isInvalid(TraceFormat.B3Single)).toBe(false);
    expect(r.conflict).toBe(false);
    // tracestate belongs to the traceparent that failed: not read, not flagged.
    expect(r.context!.traceState).toBe("");
    expect(r.traceStateInvalid).toBe(false);
  });

  it("treats duplicated headers as invalid and starts fresh", () => {
    const r = extractTraceContext(headersW3C(TP + "," + TP_OTHER, "rojo=1"));
    expect(r.context).toBeNull();
    expect(r.invalid).toBe(true);
    expect(r.isInvalid(TraceFormat.W3C)).toBe(true);
    const h = new TraceHeaders();
    h.b3 = B3_TRACE + "-" + B3_SPAN + "-1," + B3_TRACE + "-" + B3_SPAN + "-1";
    h.xB3TraceId = B3_TRACE + "," + B3_TRACE;
    h.xB3SpanId = B3_SPAN;
    const b = extractTraceContext(h);
    expect(b.context).toBeNull();
    expect(b.isInvalid(TraceFormat.B3Single)).toBe(true);
    expect(b.isInvalid(TraceFormat.B3Multi)).toBe(true);
  });

  it("drops an invalid tracestate but keeps the traceparent", () => {
    const r = extractTraceContext(headersW3C(TP, "foo=1,FOO=2"));
    expect(r.format).toBe(TraceFormat.W3C);
    expect(r.context!.traceState).toBe("");
    expect(r.traceStateInvalid).toBe(true);
    expect(r.invalid).toBe(true);
    expect(r.invalidFormats).toBe(0);
    expect(extractTraceContext(headersW3C(TP, "")).traceStateInvalid).toBe(false);
    // Without a traceparent, tracestate is discarded (and not parsed).
    const alone = extractTraceContext(headersW3C("", "foo=1"));
    expect(alone.context).toBeNull();
    expect(alone.invalid).toBe(false);
  });

  it("attaches tracestate to a B3 winner of the same trace only", () => {
    const h = headersW3C(TP, "rojo=1");
    h.b3 = TRACE + "-" + B3_SPAN + "-1";
    const same = extractTraceContext(h, [TraceFormat.B3Single, TraceFormat.W3C]);
    expect(same.format).toBe(TraceFormat.B3Single);
    expect(same.context!.traceState).toBe("rojo=1");
    h.b3 = B3_TRACE + "-" + B3_SPAN + "-1";
    const other = extractTraceContext(h, [TraceFormat.B3Single, TraceFormat.W3C]);
    expect(other.conflict).toBe(true);
    expect(other.context!.traceState).toBe("");
  });

  it("uses a sampling-only header for a fresh trace or a deferred context, never over a decision", () => {
    const h = new TraceHeaders();
    h.b3 = "0";
    let r = extractTraceContext(h);
    expect(r.context).toBeNull();
    expect(r.sampled).toBe(Sampling.No);
    expect(r.samplingFormat).toBe(TraceFormat.B3Single);
    expect(r.invalid).toBe(false);
    // x-b3-* ids without a decision take b3: 0's.
    h.xB3TraceId = B3_TRACE;
    h.xB3SpanId = B3_SPAN;
    r = extractTraceContext(h);
    expect(r.format).toBe(TraceFormat.B3Multi);
    expect(r.sampled).toBe(Sampling.No);
    expect(r.context!.sampled).toBe(Sampling.No);
    expect(r.samplingFormat).toBe(TraceFormat.B3Single);
    // A traceparent's own decision stands.
    h.traceparent = TP;
    r = extractTraceContext(h);
    expect(r.format).toBe(TraceFormat.W3C);
    expect(r.sampled).toBe(Sampling.Yes);
    expect(r.samplingFormat).toBe(TraceFormat.W3C);
    // Debug without ids.
    const d = new TraceHeaders();
    d.xB3Flags = "1";
    r = extractTraceContext(d);
    expect(r.debug).toBe(true);
    expect(r.samplingFormat).toBe(TraceFormat.B3Multi);
  });
});

describe("ids and the propagated span", () => {
  it("never makes a zero id, redrawing and never hanging on a broken source", () => {
    expect<u64>(newId64(new Sequence([0, 0, 42]))).toBe(42);
    expect<u64>(newId64(new Sequence([0]))).not.toBe(0);
    const root = newRootContext(new Sequence([0]));
    expect<u64>(root.traceIdLow).not.toBe(0);
    expect<u64>(root.spanId).not.toBe(0);
    expect(root.hasIds()).toBe(true);
    const rnd = new SplitMix64(1);
    for (let i = 0; i < 1000; i++) {
      const c = newRootContext(rnd);
      expect(c.hasIds()).toBe(true);
      expect(parseTraceparent(formatTraceparent(c))!.traceIdHex()).toBe(c.traceIdHex());
    }
  });

  it("is deterministic for a given source", () => {
    const a = newRootContext(new Sequence([0x1111, 0x2222, 0x3333]));
    expect(a.traceIdHex()).toBe("00000000000011110000000000002222");
    expect(a.spanIdHex()).toBe("0000000000003333");
    expect<u64>(new SplitMix64(7).next64()).toBe(new SplitMix64(7).next64());
  });

  it("starts a fresh root trace when nothing was extracted", () => {
    const options = new TraceOptions();
    options.randomSamplingPercentage = 100;
    const span = startSpan(extractTraceContext(new TraceHeaders()), options, new Sequence([0xa, 0xb, 0xc, 0xd]));
    expect(span.traceIdHex()).toBe("000000000000000a000000000000000b");
    expect(span.spanIdHex()).toBe("000000000000000c");
    expect<u64>(span.parentSpanId).toBe(0);
    expect(span.sampled).toBe(Sampling.Yes);
    expect(span.traceState).toBe("mtw=000000000000000c");
    expect(formatTraceparent(span)).toBe("00-000000000000000a000000000000000b-000000000000000c-01");
  });

  it("continues an incoming W3C trace as a child with our tracestate entry at the left", () => {
    const x = extractTraceContext(headersW3C(TP, "rojo=1,mtw=0000000000000001"));
    const span = startSpan(x, new TraceOptions(), new Sequence([0xabc]));
    expect(span.traceIdHex()).toBe(TRACE);
    expect(u64ToHex(span.parentSpanId)).toBe(PARENT);
    expect(span.spanIdHex()).toBe("0000000000000abc");
    expect(span.sampled).toBe(Sampling.Yes); // honoured, even at the default 1 %
    expect(span.traceState).toBe("mtw=0000000000000abc,rojo=1");
    expect(formatTraceparent(span)).toBe("00-" + TRACE + "-0000000000000abc-01");
    // An unsampled caller stays unsampled, even at 100 %.
    const options = new TraceOptions();
    options.randomSamplingPercentage = 100;
    options.traceStateKey = "tenant@vendor";
    const off = startSpan(extractTraceContext(headersW3C("00-" + TRACE + "-" + PARENT + "-00", "")), options, new SplitMix64(3));
    expect(off.sampled).toBe(Sampling.No);
    expect(formatTraceparent(off).endsWith("-00")).toBe(true);
    expect(off.traceState).toBe("tenant@vendor=" + off.spanIdHex());
  });

  it("adds no tracestate entry when the key is empty", () => {
    const options = new TraceOptions();
    options.traceStateKey = "";
    const span = startSpan(extractTraceContext(headersW3C(TP, "rojo=1")), options, new SplitMix64(3));
    expect(span.traceState).toBe("rojo=1");
  });

  it("a span id never repeats the parent's", () => {
    const parent = parseTraceparent(TP)!;
    const child = childOf(parent, new Sequence([0x1234567890123456, 0x99]));
    expect<u64>(child.spanId).toBe(0x99);
  });

  it("keeps a 64-bit B3 trace id 64-bit in B3 output and pads it for W3C", () => {
    const h = new TraceHeaders();
    h.xB3TraceId = "463ac35c9f6413ad";
    h.xB3SpanId = "a2fb4a1d1a96d312";
    h.xB3Sampled = "1";
    const span = startSpan(extractTraceContext(h), new TraceOptions(), new Sequence([0x77]));
    const v = formatB3Multi(span);
    expect(v.traceId).toBe("463ac35c9f6413ad");
    expect(v.spanId).toBe("0000000000000077");
    expect(v.parentSpanId).toBe("a2fb4a1d1a96d312");
    expect(v.sampled).toBe("1");
    expect(v.flags).toBe("");
    expect(formatB3Single(span)).toBe("463ac35c9f6413ad-0000000000000077-1-a2fb4a1d1a96d312");
    expect(formatTraceparent(span)).toBe("00-0000000000000000463ac35c9f6413ad-0000000000000077-01");
  });

  it("formats B3 for 128-bit ids, debug, deny and defer", () => {
    const c = new TraceContext();
    c.traceIdHigh = 0x80f198ee56343ba8;
    c.traceIdLow = 0x64fe8b2a57d3eff7;
    c.spanId = 0xe457b5a2e4d86bd1;
    c.parentSpanId = 0x05e3ac9a4f6e3b90;
    c.sampled = Sampling.Yes;
    expect(formatB3Single(c)).toBe(B3_TRACE + "-" + B3_SPAN + "-1-" + B3_PARENT);
    c.debug = true;
    expect(formatB3Single(c)).toBe(B3_TRACE + "-" + B3_SPAN + "-d-" + B3_PARENT);
    let v: B3MultiValues = formatB3Multi(c);
    expect(v.traceId).toBe(B3_TRACE);
    expect(v.sampled).toBe(""); // debug implies accept: B3 asks not to send both
    expect(v.flags).toBe("1");
    c.debug = false;
    c.sampled = Sampling.No;
    expect(formatB3Single(c)).toBe(B3_TRACE + "-" + B3_SPAN + "-0-" + B3_PARENT);
    expect(formatB3Multi(c).sampled).toBe("0");
    expect(formatTraceparent(c)).toBe("00-" + B3_TRACE + "-" + B3_SPAN + "-00");
    c.sampled = Sampling.Unset;
    expect(formatB3Single(c)).toBe(B3_TRACE + "-" + B3_SPAN); // no state, so no parent either
    v = formatB3Multi(c);
    expect(v.sampled).toBe("");
    expect(v.parentSpanId).toBe(B3_PARENT);
    // The formatted values parse back to the same context.
    c.sampled = Sampling.Yes;
    const back = parseB3Single(formatB3Single(c))!;
    expect(back.traceIdHex()).toBe(c.traceIdHex());
    expect<u64>(back.parentSpanId).toBe(c.parentSpanId);
    const m = formatB3Multi(c);
    expect(parseB3Multi(m.traceId, m.spanId, m.parentSpanId, m.sampled, m.flags)!.spanIdHex()).toBe(B3_SPAN);
  });

  it("formats a sampling-only context as the state alone, and no traceparent", () => {
    const deny = parseB3Single("0")!;
    expect(formatB3Single(deny)).toBe("0");
    expect(formatTraceparent(deny)).toBe("");
    const v = formatB3Multi(deny);
    expect(v.traceId).toBe("");
    expect(v.sampled).toBe("0");
    expect(formatB3Single(new TraceContext())).toBe("");
  });

  it("propagates debug from B3 to all formats", () => {
    const h = new TraceHeaders();
    h.b3 = B3_TRACE + "-" + B3_SPAN + "-d";
    const options = new TraceOptions();
    options.randomSamplingPercentage = 0;
    const span = startSpan(extractTraceContext(h), options, new SplitMix64(9));
    expect(span.debug).toBe(true);
    expect(span.isSampled()).toBe(true);
    expect(formatTraceparent(span).endsWith("-01")).toBe(true);
    expect(formatB3Multi(span).flags).toBe("1");
  });

  it("applies b3: 0 to the fresh trace it starts", () => {
    const h = new TraceHeaders();
    h.b3 = "0";
    const options = new TraceOptions();
    options.randomSamplingPercentage = 100;
    const span = startSpan(extractTraceContext(h), options, new SplitMix64(5));
    expect(span.hasIds()).toBe(true);
    expect(span.sampled).toBe(Sampling.No);
  });
});

describe("sampling", () => {
  it("converts the percentage to millionths", () => {
    expect<u64>(samplingThreshold(1.0)).toBe(10_000);
    expect<u64>(samplingThreshold(37.5)).toBe(375_000);
    expect<u64>(samplingThreshold(100)).toBe(1_000_000);
    expect<u64>(samplingThreshold(250)).toBe(1_000_000);
    expect<u64>(samplingThreshold(0)).toBe(0);
    expect<u64>(samplingThreshold(-3)).toBe(0);
    expect<u64>(samplingThreshold(NaN)).toBe(0);
    expect<u64>(samplingThreshold(Infinity)).toBe(1_000_000);
    expect<u64>(samplingThreshold(0.0001)).toBe(1);
    expect<u64>(samplingThreshold(0.00004)).toBe(0);
  });

  it("lets debug and upstream decisions win over the percentage", () => {
    expect(decideSampling(Sampling.Unset, true, 0, 999)).toBe(true);
    expect(decideSampling(Sampling.No, true, 0, 999)).toBe(true);
    expect(decideSampling(Sampling.Yes, false, 0, 999)).toBe(true);
    expect(decideSampling(Sampling.No, false, 100, 0)).toBe(false);
  });

  it("compares random % 1_000_000 with the threshold", () => {
    expect(decideSampling(Sampling.Unset, false, 1.0, 9_999)).toBe(true);
    expect(decideSampling(Sampling.Unset, false, 1.0, 10_000)).toBe(false);
    expect(decideSampling(Sampling.Unset, false, 1.0, 1_000_000 + 9_999)).toBe(true);
    expect(decideSampling(Sampling.Unset, false, 100, 0xffffffffffffffff)).toBe(true);
    expect(decideSampling(Sampling.Unset, false, 0, 0)).toBe(false);
  });

  it("samples at the configured rate over 100k draws", () => {
    expect(samplingCount(0, 100_000, 11)).toBe(0);
    expect(samplingCount(100, 100_000, 12)).toBe(100_000);
    // Binomial standard deviations: 31.5 at 1 %, 153 at 37.5 %; tolerances are about 4.5 of them.
    const one = samplingCount(1.0, 100_000, 13);
    expect(one).toBeGreaterThanOrEqual(1_000 - 140);
    expect(one).toBeLessThanOrEqual(1_000 + 140);
    const most = samplingCount(37.5, 100_000, 14);
    expect(most).toBeGreaterThanOrEqual(37_500 - 700);
    expect(most).toBeLessThanOrEqual(37_500 + 700);
  });

  it("does not depend on x-request-id", () => {
    // The decision is a function of its arguments only; startSpan draws from the RandomSource.
    const options = new TraceOptions();
    options.randomSamplingPercentage = 50;
    let sampled = 0;
    const rnd = new SplitMix64(21);
    for (let i = 0; i < 10_000; i++) {
      if (startSpan(extractTraceContext(new TraceHeaders()), options, rnd).isSampled()) sampled++;
    }
    expect(sampled).toBeGreaterThan(4_700);
    expect(sampled).toBeLessThan(5_300);
  });
});

describe("UUIDv4 and x-request-id", () => {
  it("makes canonical lowercase UUIDv4s from 16 bytes", () => {
    const b = new Uint8Array(16);
    for (let i = 0; i < 16; i++) b[i] = <u8>i;
    expect(uuidV4FromBytes(b)).toBe("00010203-0405-4607-8809-0a0b0c0d0e0f");
    expect(b[6]).toBe(6); // not modified
    b.fill(0xff);
    expect(uuidV4FromBytes(b)).toBe("ffffffff-ffff-4fff-bfff-ffffffffffff");
    expect(uuidV4FromBytes(new Uint8Array(0))).toBe("00000000-0000-4000-8000-000000000000");
    const rnd = new SplitMix64(99);
    for (let i = 0; i < 1000; i++) {
      const u = uuidV4(rnd);
      expect(isUuidV4(u)).toBe(true, u);
      expect(u.toLowerCase()).toBe(u);
    }
    expect(uuidV4(new Sequence([0x0123456789abcdef, 0xfedcba9876543210]))).toBe("01234567-89ab-4def-bedc-ba9876543210");
  });

  it("validates UUIDs strictly", () => {
    expect(isValidUuid("f81d4fae-7dec-11d0-a765-00a0c91e6bf6")).toBe(true); // v1, RFC 9562
    expect(isUuidV4("f81d4fae-7dec-11d0-a765-00a0c91e6bf6")).toBe(false);
    expect(isValidUuid("F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6")).toBe(true);
    expect(isUuidV4("919108f7-52d1-4320-9bac-f847db4148a8")).toBe(true);
    expect(isUuidV4("919108f7-52d1-4320-cbac-f847db4148a8")).toBe(false); // variant 110x
    const bad: StaticArray<string> = [
      "", "919108f7-52d1-4320-9bac-f847db4148a", "919108f7-52d1-4320-9bac-f847db4148a8a", "919108f752d143209bacf847db4148a8",
      "{919108f7-52d1-4320-9bac-f847db4148a8}", "urn:uuid:919108f7-52d1-4320-9bac-f847db4148a8", "919108f7-52d1-4320-9bac_f847db4148a8",
      "919108g7-52d1-4320-9bac-f847db4148a8", " 919108f7-52d1-4320-9bac-f847db4148a", "919108f7-52d14-320-9bac-f847db4148a8",
    ];
    for (let i = 0; i < bad.length; i++) expect(isValidUuid(bad[i])).toBe(false, bad[i]);
  });

  it("keeps any x-request-id up to 256 characters that HTTP allows and replaces the rest", () => {
    expect(isUsableRequestId("919108f7-52d1-4320-9bac-f847db4148a8")).toBe(true);
    expect(isUsableRequestId("my-request 42")).toBe(true);
    expect(isUsableRequestId("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")).toBe(true);
    expect(isUsableRequestId(repeatChar("x", 256))).toBe(true);
    expect(isUsableRequestId(repeatChar("x", 257))).toBe(false);
    expect(isUsableRequestId("")).toBe(false);
    expect(isUsableRequestId("   ")).toBe(false);
    expect(isUsableRequestId(" \t ")).toBe(false);
    expect(isUsableRequestId("a\nb")).toBe(false);
    expect(isUsableRequestId("a\u0000b")).toBe(false);
    expect(isUsableRequestId("a\u007fb")).toBe(false);
    expect(isUsableRequestId("a\tb")).toBe(true);
    expect(isUsableRequestId("caf\u00e9")).toBe(true); // obs-text is allowed in field values
    expect(requestIdOrNew("abc", new SplitMix64(1))).toBe("abc");
    expect(isUuidV4(requestIdOrNew("", new SplitMix64(1)))).toBe(true);
  });
});

// A fixed-seed generator for hostile input, separate from the sources under test.
const hostile = new SplitMix64(0x5eed);
const ALPHABET = "0123456789abcdefABCDEF-,=@ \t.;_*/:xyzd";
const SEEDS: StaticArray<string> = [
  TP,
  "cc-" + TRACE + "-" + PARENT + "-01-future",
  B3_TRACE + "-" + B3_SPAN + "-1-" + B3_PARENT,
  "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
  "919108f7-52d1-4320-9bac-f847db4148a8",
];

function randomString(): string {
  const kind = <i32>(hostile.next64() % 3);
  const codes: i32[] = [];
  if (kind == 0) {
    // Mutate a valid header: replace, insert or delete a few characters.
    const seed = SEEDS[<i32>(hostile.next64() % <u64>SEEDS.length)];
    for (let i = 0; i < seed.length; i++) codes.push(seed.charCodeAt(i));
    const edits = 1 + <i32>(hostile.next64() % 3);
    for (let e = 0; e < edits; e++) {
      const at = codes.length > 0 ? <i32>(hostile.next64() % <u64>codes.length) : 0;
      const c = ALPHABET.charCodeAt(<i32>(hostile.next64() % <u64>ALPHABET.length));
      const op = hostile.next64() % 3;
      if (op == 0 && codes.length > 0) codes[at] = c;
      else if (op == 1) {
        codes.push(c);
        for (let k = codes.length - 1; k > at; k--) codes[k] = codes[k - 1];
        codes[at] = c;
      }
      else if (codes.length > 0) codes.splice(at, 1);
    }
  } else {
    const len = <i32>(hostile.next64() % 90);
    for (let i = 0; i < len; i++) {
      const r = hostile.next64();
      // Mostly relevant characters, some arbitrary code units (controls, non-ASCII, surrogates).
      codes.push(kind == 1 || (r & 7) != 0 ? ALPHABET.charCodeAt(<i32>((r >> 8) % <u64>ALPHABET.length)) : <i32>((r >> 8) & 0xffff));
    }
  }
  return String.fromCharCodes(codes);
}

let failures = 0;
let firstFailure = "";

/** Records a broken invariant without calling expect in the hot loop (as-pect's expect is slow). */
function check(ok: bool, what: string, input: string): void {
  if (ok) return;
  if (failures == 0) firstFailure = what + ": " + input;
  failures++;
}

describe("hostile input", () => {
  it("never traps any parser, and whatever is accepted round-trips", () => {
    let acceptedTp = 0;
    let acceptedB3 = 0;
    let acceptedTs = 0;
    let extracted = 0;
    const options = new TraceOptions();
    const rnd = new SplitMix64(77);
    for (let n = 0; n < 20_000; n++) {
      const s = randomString();
      const tp = parseTraceparent(s);
      if (tp !== null) {
        acceptedTp++;
        const again = parseTraceparent(formatTraceparent(tp));
        check(again !== null && again.traceIdHex() == tp.traceIdHex() && again.spanId == tp.spanId, "traceparent round trip", s);
      }
      const b3 = parseB3Single(s);
      if (b3 !== null) {
        acceptedB3++;
        check(parseB3Single(formatB3Single(b3)) !== null, "b3 round trip", s);
      }
      const norm = normalizeTraceState(s);
      if (norm !== null) {
        acceptedTs++;
        const again = normalizeTraceState(norm);
        check(again !== null && again == norm, "tracestate idempotent", s);
      }
      const updated = updateTraceState(s, "mtw", "0123456789abcdef");
      const renorm = normalizeTraceState(updated);
      check(updated.length <= MAX_TRACESTATE_LENGTH && renorm !== null && renorm == updated, "tracestate update", s);
      traceStateGet(s, "rojo");
      isValidUuid(s);
      isUuidV4(s);
      isUsableRequestId(s);
      isPortableTraceStateKey(s);
      multi(s, s, s, s, s);
      const dash = s.indexOf("-");
      if (dash >= 0) multi(s.substring(0, dash), s.substring(dash + 1), "", "1", "");

      const h = new TraceHeaders();
      h.traceparent = s;
      h.tracestate = randomString();
      h.b3 = randomString();
      h.xB3TraceId = s.substring(0, 32);
      h.xB3SpanId = s.substring(0, 16);
      h.xB3Sampled = (n & 1) != 0 ? "1" : s.substring(0, 1);
      h.xB3Flags = s.substring(0, 1);
      const x: ExtractResult = extractTraceContext(h);
      if (x.context !== null) extracted++;
      const span = startSpan(x, options, rnd);
      check(span.hasIds() && span.sampled != Sampling.Unset, "span ids and decision", s);
      check(tpValid(formatTraceparent(span)), "span traceparent", s);
      check(parseB3Single(formatB3Single(span)) !== null, "span b3", s);
      check(span.traceState.length <= MAX_TRACESTATE_LENGTH, "span tracestate", s);
    }
    expect(failures).toBe(0, firstFailure);
    // The corpus reaches the accepting paths too, not only the refusals.
    expect(acceptedTp).toBeGreaterThan(0);
    expect(acceptedB3).toBeGreaterThan(0);
    expect(acceptedTs).toBeGreaterThan(0);
    expect(extracted).toBeGreaterThan(0);
  });
});
