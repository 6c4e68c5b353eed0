import { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, WireReader } from "../../../assembly/proto/wire";

function reader(list: i32[]): WireReader {
  const b = new ArrayBuffer(list.length);
  for (let i = 0; i < list.length; i++) store<u8>(changetype<usize>(b) + i, <u8>list[i]);
  const start = changetype<usize>(b);
  return new WireReader().reset(start, start + <usize>list.length);
}

describe("WireReader", () => {
  it("reads keys and varints, one to ten bytes", () => {
    const r = reader([0x08, 0xac, 0x02, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    expect(r.key()).toBe((1 << 3) | WIRE_VARINT);
    expect(r.varint()).toBe(300);
    expect(r.key()).toBe(2 << 3);
    expect(r.varint()).toBe(u64.MAX_VALUE);
    expect(r.more()).toBe(false);
    expect(r.failed).toBe(false);
  });

  it("fails on a varint cut short or longer than ten bytes, and on field number 0", () => {
    const cut = reader([0x80]);
    cut.varint();
    expect(cut.failed).toBe(true);
    const long = reader([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    long.varint();
    expect(long.failed).toBe(true);
    const zero = reader([0x02]);
    expect(zero.key()).toBe(0);
    expect(zero.failed).toBe(true);
  });

  it("finds a length-delimited field's end and skips every wire type", () => {
    // 1: "ab" (LEN), 2: fixed64, 3: fixed32, 4: varint 5
    const r = reader([0x0a, 0x02, 0x61, 0x62, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1d, 1, 2, 3, 4, 0x20, 0x05]);
    expect(r.key()).toBe((1 << 3) | WIRE_LEN);
    const stop = r.lengthEnd();
    expect(stop - r.pos).toBe(2);
    expect(load<u8>(r.pos)).toBe(0x61);
    r.pos = stop;
    expect(r.key()).toBe((2 << 3) | WIRE_I64);
    r.skip(WIRE_I64);
    expect(r.key()).toBe((3 << 3) | WIRE_I32);
    r.skip(WIRE_I32);
    expect(r.key()).toBe((4 << 3) | WIRE_VARINT);
    r.skip(WIRE_VARINT);
    expect(r.more()).toBe(false);
    expect(r.failed).toBe(false);
  });

  it("refuses lengths and fixed fields past the end, and groups", () => {
    const len = reader([0x0a, 0x05, 0x61]);
    len.key();
    len.lengthEnd();
    expect(len.failed).toBe(true);
    const fixed = reader([0x09, 1, 2, 3]);
    fixed.key();
    fixed.skip(WIRE_I64);
    expect(fixed.failed).toBe(true);
    const fixed32 = reader([0x0d, 1, 2, 3, 4]);
    fixed32.key();
    fixed32.skip(WIRE_I32);
    expect(fixed32.failed).toBe(false);
    expect(fixed32.more()).toBe(false);
    const group = reader([0x0b]);
    group.skip(group.key() & 7);
    expect(group.failed).toBe(true);
  });
});
