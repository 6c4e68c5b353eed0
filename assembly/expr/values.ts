// Reads the result of Envoy's `expr_evaluate` for a list-valued expression into fixed slots,
// without allocating. Envoy 1.40 serializes a list like a header map: u32 count, count x (u32
// size, u32 size), then each element's own serialization (an int as 8 bytes little-endian, a
// bool as 1 byte, a string raw, a duration as 8 bytes of nanoseconds) with an empty second
// half. Older Envoys exported lists as a google.protobuf.ListValue (numbers as doubles,
// durations as JSON text "1.250s"); readListResult takes either. Input from the host is still
// checked: a malformed buffer yields `false`, never a trap.

import { WIRE_I64, WIRE_LEN, WIRE_VARINT, WireReader } from "../proto/wire";

export const enum SlotKind {
  Missing = 0,
  Null = 1,
  Number = 2,
  String = 3,
  Bool = 4,
  Other = 5,
  /** An element's native bytes (the pairs form): its type is the caller's to know. */
  Raw = 6,
}

export class ListSlots {
  kinds: StaticArray<u8>;
  numbers: StaticArray<f64>;
  /** Strings as (pointer, length) into the buffer that was read; valid while it lives. */
  starts: StaticArray<usize>;
  lengths: StaticArray<u32>;
  count: i32 = 0;

  constructor(readonly capacity: i32) {
    this.kinds = new StaticArray<u8>(capacity);
    this.numbers = new StaticArray<f64>(capacity);
    this.starts = new StaticArray<usize>(capacity);
    this.lengths = new StaticArray<u32>(capacity);
  }

  kind(i: i32): SlotKind {
    return i < this.count ? <SlotKind>this.kinds[i] : SlotKind.Missing;
  }

  /** The integer in slot i (8 raw bytes, or a number; a bool counts 1/0), or `fallback`. */
  integer(i: i32, fallback: i64): i64 {
    const k = this.kind(i);
    if (k == SlotKind.Raw) {
      if (this.lengths[i] == 8) return load<i64>(this.starts[i]);
      return fallback;
    }
    if (k == SlotKind.Number || k == SlotKind.Bool) return <i64>this.numbers[i];
    return fallback;
  }

  isTrue(i: i32): bool {
    const k = this.kind(i);
    if (k == SlotKind.Raw) return this.lengths[i] == 1 && load<u8>(this.starts[i]) != 0;
    return k == SlotKind.Bool && this.numbers[i] != 0;
  }

  /** Nanoseconds of a duration in slot i (raw nanoseconds or JSON text), or -1. */
  durationNs(i: i32): i64 {
    const k = this.kind(i);
    if (k == SlotKind.Raw) return this.lengths[i] == 8 ? load<i64>(this.starts[i]) : -1;
    if (k == SlotKind.Number) return <i64>this.numbers[i];
    if (k == SlotKind.String) return durationTextToNanos(this.starts[i], this.lengths[i]);
    return -1;
  }

  /** Length of slot i's text; 0 when it holds none. */
  textLength(i: i32): u32 {
    const k = this.kind(i);
    return k == SlotKind.String || k == SlotKind.Raw ? this.lengths[i] : 0;
  }

  /** Slot i's text as a new string; "" when it holds none. */
  text(i: i32): string {
    const n = this.textLength(i);
    return n == 0 ? "" : String.UTF8.decodeUnsafe(this.starts[i], n);
  }

  /** Sets slot i to `length` raw bytes at `ptr` (for values read one by one). */
  setRaw(i: i32, ptr: usize, length: u32): void {
    this.kinds[i] = <u8>SlotKind.Raw;
    this.starts[i] = ptr;
    this.lengths[i] = length;
  }
}

/** Reads either serialization of a list result (see the top of this file). */
export function readListResult(ptr: usize, size: usize, out: ListSlots): bool {
  return readPairs(ptr, size, out) || readListValue(ptr, size, out);
}

/**
 * The pairs form; true only when the sizes account for every byte exactly, so a ListValue is
 * never mistaken for it.
 */
export function readPairs(ptr: usize, size: usize, out: ListSlots): bool {
  out.count = 0;
  if (size < 4) return false;
  const count = <usize>load<u32>(ptr);
  if (count > (size - 4) / 8) return false;
  let data = ptr + 4 + count * 8;
  const end = ptr + size;
  for (let i: usize = 0; i < count; i++) {
    const a = <u64>load<u32>(ptr + 4 + i * 8);
    const b = <u64>load<u32>(ptr + 8 + i * 8);
    if (a + b + 2 > <u64>(end - data)) return false;
    if (<i32>i < out.capacity) out.setRaw(<i32>i, data, <u32>a);
    data += <usize>(a + b + 2);
  }
  if (data != end) return false;
  out.count = min(<i32>count, out.capacity);
  return true;
}

// Two readers allocated once: the list, and the element being read.
const listReader = new WireReader();
const valueReader = new WireReader();

// One google.protobuf.Value (its bytes in [start, end)) into slot i.
function readValue(start: usize, end: usize, out: ListSlots, i: i32): bool {
  const r = valueReader.reset(start, end);
  let kind = SlotKind.Null;
  while (r.more()) {
    const key = r.key();
    if (r.failed) return false;
    const field = key >> 3;
    const wire = key & 7;
    if (field == 2 && wire == WIRE_I64) {
      const at = r.pos;
      r.advance(8);
      if (r.failed) return false;
      kind = SlotKind.Number;
      out.numbers[i] = load<f64>(at);
    } else if (field == 3 && wire == WIRE_LEN) {
      const stop = r.lengthEnd();
      if (r.failed) return false;
      kind = SlotKind.String;
      out.starts[i] = r.pos;
      out.lengths[i] = <u32>(stop - r.pos);
      r.pos = stop;
    } else if (field == 4 && wire == WIRE_VARINT) {
      const flag = r.varint();
      kind = SlotKind.Bool;
      out.numbers[i] = flag != 0 ? 1 : 0;
    } else if (field == 1 && wire == WIRE_VARINT) {
      r.varint();
      kind = SlotKind.Null;
    } else {
      r.skip(wire);
      kind = SlotKind.Other;
    }
  }
  if (r.failed) return false;
  out.kinds[i] = <u8>kind;
  return true;
}

/**
 * Reads a serialized ListValue in [ptr, ptr + size) into `out` (at most out.capacity values;
 * more are ignored). False when the bytes are malformed.
 */
export function readListValue(ptr: usize, size: usize, out: ListSlots): bool {
  out.count = 0;
  const r = listReader.reset(ptr, ptr + size);
  while (r.more()) {
    const key = r.key();
    if (r.failed) return false;
    if (key >> 3 == 1 && (key & 7) == WIRE_LEN) {
      const stop = r.lengthEnd();
      if (r.failed) return false;
      if (out.count < out.capacity) {
        if (!readValue(r.pos, stop, out, out.count)) return false;
        out.count++;
      }
      r.pos = stop;
    } else {
      r.skip(key & 7);
    }
  }
  return !r.failed;
}

/**
 * Nanoseconds in a protobuf Duration's JSON text ("1.250s", "0s", "-0.5s" is refused), or -1
 * when the text is not one.
 */
export function durationTextToNanos(ptr: usize, len: u32): i64 {
  if (len < 2 || load<u8>(ptr + len - 1) != 0x73) return -1;
  let seconds: i64 = 0;
  let nanos: i64 = 0;
  let i: u32 = 0;
  let digits = 0;
  for (; i < len - 1; i++) {
    const c = <i32>load<u8>(ptr + i);
    if (c == 0x2e) break;
    if (c < 0x30 || c > 0x39 || seconds > 315576000000) return -1;
    seconds = seconds * 10 + (c - 0x30);
    digits++;
  }
  if (digits == 0) return -1;
  if (i < len - 1) {
    let scale: i64 = 100000000;
    for (i++; i < len - 1; i++) {
      const c = <i32>load<u8>(ptr + i);
      if (c < 0x30 || c > 0x39) return -1;
      nanos += (c - 0x30) * scale;
      scale /= 10;
    }
  }
  return seconds * 1000000000 + nanos;
}
