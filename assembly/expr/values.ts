// Reads the result of Envoy's `expr_evaluate` for a list-valued expression into fixed slots,
// without allocating. Envoy 1.40 serializes a list like a header map: u32 count, count x (u32
// size, u32 size), then each element's own serialization (an int as 8 bytes little-endian, a
// bool as 1 byte, a string raw, a duration as 8 bytes of nanoseconds) with an empty second
// half. Older Envoys exported lists as a google.protobuf.ListValue (numbers as doubles,
// durations as JSON text "1.250s"); readListResult takes either. Input from the host is still
// checked: a malformed buffer yields `false`, never a trap.

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

// Reads a varint at p (below end); returns the new position, or 0 when malformed. The value
// goes to VARINT.
let varint: u64 = 0;

function readVarint(p: usize, end: usize): usize {
  let result: u64 = 0;
  let shift: u64 = 0;
  while (p < end && shift < 64) {
    const b = load<u8>(p++);
    result |= (<u64>(b & 0x7f)) << shift;
    if ((b & 0x80) == 0) {
      varint = result;
      return p;
    }
    shift += 7;
  }
  return 0;
}

// Skips one field of wire type `wire` at p; returns the new position or 0.
function skipField(wire: u32, p: usize, end: usize): usize {
  if (wire == 0) return readVarint(p, end);
  if (wire == 1) return end - p >= 8 ? p + 8 : 0;
  if (wire == 5) return end - p >= 4 ? p + 4 : 0;
  if (wire == 2) {
    const q = readVarint(p, end);
    if (q == 0 || <u64>(end - q) < varint) return 0;
    return q + <usize>varint;
  }
  return 0;
}

// One google.protobuf.Value (its bytes in [p, end)) into slot i.
function readValue(p: usize, end: usize, out: ListSlots, i: i32): bool {
  let kind = SlotKind.Null;
  while (p < end) {
    const q = readVarint(p, end);
    if (q == 0) return false;
    const field = <u32>(varint >> 3);
    const wire = <u32>(varint & 7);
    p = q;
    if (field == 2 && wire == 1) {
      if (end - p < 8) return false;
      kind = SlotKind.Number;
      out.numbers[i] = load<f64>(p);
      p += 8;
    } else if (field == 3 && wire == 2) {
      const s = readVarint(p, end);
      if (s == 0 || <u64>(end - s) < varint) return false;
      kind = SlotKind.String;
      out.starts[i] = s;
      out.lengths[i] = <u32>varint;
      p = s + <usize>varint;
    } else if (field == 4 && wire == 0) {
      p = readVarint(p, end);
      if (p == 0) return false;
      kind = SlotKind.Bool;
      out.numbers[i] = varint != 0 ? 1 : 0;
    } else if (field == 1 && wire == 0) {
      p = readVarint(p, end);
      if (p == 0) return false;
      kind = SlotKind.Null;
    } else {
      p = skipField(wire, p, end);
      if (p == 0) return false;
      kind = SlotKind.Other;
    }
  }
  out.kinds[i] = <u8>kind;
  return true;
}

/**
 * Reads a serialized ListValue in [ptr, ptr + size) into `out` (at most out.capacity values;
 * more are ignored). False when the bytes are malformed.
 */
export function readListValue(ptr: usize, size: usize, out: ListSlots): bool {
  out.count = 0;
  let p = ptr;
  const end = ptr + size;
  while (p < end) {
    const q = readVarint(p, end);
    if (q == 0) return false;
    const field = <u32>(varint >> 3);
    const wire = <u32>(varint & 7);
    p = q;
    if (field == 1 && wire == 2) {
      const s = readVarint(p, end);
      if (s == 0 || <u64>(end - s) < varint) return false;
      const e = s + <usize>varint;
      if (out.count < out.capacity) {
        if (!readValue(s, e, out, out.count)) return false;
        out.count++;
      }
      p = e;
    } else {
      p = skipField(wire, p, end);
      if (p == 0) return false;
    }
  }
  return true;
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
