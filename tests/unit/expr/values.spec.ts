import { durationTextToNanos, ListSlots, readListResult, readListValue, readPairs, SlotKind } from "../../../assembly/expr/values";

function bytes(list: i32[]): ArrayBuffer {
  const b = new ArrayBuffer(list.length);
  for (let i = 0; i < list.length; i++) store<u8>(changetype<usize>(b) + i, <u8>list[i]);
  return b;
}

function read(list: i32[], out: ListSlots): bool {
  const b = bytes(list);
  return readListValue(changetype<usize>(b), b.byteLength, out);
}

describe("readListValue", () => {
  it("reads numbers, strings, booleans and empty strings", () => {
    // [200.0, "ab", true, ""]
    const out = new ListSlots(8);
    expect(read([0x0a, 0x09, 0x11, 0, 0, 0, 0, 0, 0, 0x69, 0x40, 0x0a, 0x04, 0x1a, 0x02, 0x61, 0x62, 0x0a, 0x02, 0x20, 0x01, 0x0a, 0x02, 0x1a, 0x00], out)).toBe(true);
    expect(out.count).toBe(4);
    expect(out.kind(0)).toBe(SlotKind.Number);
    expect(out.integer(0, -1)).toBe(200);
    expect(out.kind(1)).toBe(SlotKind.String);
    expect(out.text(1)).toBe("ab");
    expect(out.isTrue(2)).toBe(true);
    expect(out.kind(3)).toBe(SlotKind.String);
    expect(out.text(3)).toBe("");
    expect(out.kind(4)).toBe(SlotKind.Missing);
  });
  it("reads an empty Value as null and skips unknown fields", () => {
    const out = new ListSlots(4);
    expect(read([0x0a, 0x00, 0x12, 0x01, 0x41, 0x0a, 0x02, 0x08, 0x00], out)).toBe(true);
    expect(out.count).toBe(2);
    expect(out.kind(0)).toBe(SlotKind.Null);
    expect(out.kind(1)).toBe(SlotKind.Null);
  });
  it("refuses truncated input without reading past it", () => {
    const out = new ListSlots(4);
    expect(read([0x0a, 0x09, 0x11, 0, 0], out)).toBe(false);
    expect(read([0x0a, 0x04, 0x1a, 0x08, 0x61], out)).toBe(false);
    expect(read([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], out)).toBe(false);
  });
  it("keeps only as many values as it has slots", () => {
    const out = new ListSlots(1);
    expect(read([0x0a, 0x02, 0x20, 0x01, 0x0a, 0x02, 0x20, 0x00], out)).toBe(true);
    expect(out.count).toBe(1);
  });
});

describe("durationTextToNanos", () => {
  it("reads protobuf Duration JSON text", () => {
    const t = String.UTF8.encode("1.250s");
    expect(durationTextToNanos(changetype<usize>(t), t.byteLength)).toBe(1250000000);
    const z = String.UTF8.encode("0s");
    expect(durationTextToNanos(changetype<usize>(z), z.byteLength)).toBe(0);
    const n = String.UTF8.encode("0.000001234s");
    expect(durationTextToNanos(changetype<usize>(n), n.byteLength)).toBe(1234);
  });
  it("refuses what is not a duration", () => {
    const a = String.UTF8.encode("-1s");
    expect(durationTextToNanos(changetype<usize>(a), a.byteLength)).toBe(-1);
    const b = String.UTF8.encode("12");
    expect(durationTextToNanos(changetype<usize>(b), b.byteLength)).toBe(-1);
    const c = String.UTF8.encode("s");
    expect(durationTextToNanos(changetype<usize>(c), c.byteLength)).toBe(-1);
  });
});

// [200 (int), "ab", true, ""] as Envoy 1.40 sends it: count, (size, 0) per element, then each
// element and an empty second half, both NUL-terminated.
const envoy140: i32[] = [
  4, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0xc8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x61, 0x62, 0, 0, 1, 0, 0, 0, 0,
];

describe("readPairs (Envoy 1.40's list serialization)", () => {
  it("reads ints, strings, bools and empty strings by position", () => {
    const out = new ListSlots(8);
    const b = bytes(envoy140);
    expect(readPairs(changetype<usize>(b), b.byteLength, out)).toBe(true);
    expect(out.count).toBe(4);
    expect(out.integer(0, -1)).toBe(200);
    expect(out.text(1)).toBe("ab");
    expect(out.isTrue(2)).toBe(true);
    expect(out.textLength(3)).toBe(0);
    expect(out.durationNs(0)).toBe(200);
  });
  it("is tried before the ListValue form and refuses bytes that do not add up", () => {
    const out = new ListSlots(8);
    const b = bytes(envoy140);
    expect(readListResult(changetype<usize>(b), b.byteLength, out)).toBe(true);
    expect(out.count).toBe(4);
    const cut = bytes(envoy140.slice(0, envoy140.length - 1));
    expect(readPairs(changetype<usize>(cut), cut.byteLength, out)).toBe(false);
    const long = bytes(envoy140.concat([0]));
    expect(readPairs(changetype<usize>(long), long.byteLength, out)).toBe(false);
  });
});
