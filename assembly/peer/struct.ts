// google.protobuf.Struct, Value and ListValue: a small model and the wire codec for Istio's peer
// metadata exchange. Encoding reproduces C++ deterministic serialization byte for byte (sidecars
// may compare or cache the header); decoding takes bytes from the network, so it answers null
// for malformed input and never traps.

export const enum ValueKind {
  Null = 0,
  Number = 1,
  String = 2,
  Bool = 3,
  Struct = 4,
  List = 5,
}

/** A google.protobuf.Value. A Struct keeps its members in parallel `keys`/`items`; a List in `items`. */
export class PbValue {
  kind: ValueKind = ValueKind.Null;
  str: string = "";
  num: f64 = 0;
  flag: bool = false;
  keys: string[] = [];
  items: PbValue[] = [];

  static nullValue(): PbValue {
    return new PbValue();
  }

  static number(n: f64): PbValue {
    const v = new PbValue();
    v.kind = ValueKind.Number;
    v.num = n;
    return v;
  }

  static string(s: string): PbValue {
    const v = new PbValue();
    v.kind = ValueKind.String;
    v.str = s;
    return v;
  }

  static bool(b: bool): PbValue {
    const v = new PbValue();
    v.kind = ValueKind.Bool;
    v.flag = b;
    return v;
  }

  static struct(): PbValue {
    const v = new PbValue();
    v.kind = ValueKind.Struct;
    return v;
  }

  static list(): PbValue {
    const v = new PbValue();
    v.kind = ValueKind.List;
    return v;
  }

  /** Sets a Struct member, replacing one with the same key; returns this for chaining. */
  set(key: string, value: PbValue): PbValue {
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) {
        this.items[i] = value;
        return this;
      }
    }
    this.keys.push(key);
    this.items.push(value);
    return this;
  }

  /** Appends to a List; returns this for chaining. */
  push(item: PbValue): PbValue {
    this.items.push(item);
    return this;
  }

  /** A Struct member, or null. Peer metadata has a handful of members, so a scan is fine. */
  get(key: string): PbValue | null {
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) return this.items[i];
    }
    return null;
  }

  /** A Struct member's text, or null when it is absent or not a String. */
  getString(key: string): string | null {
    const member = this.get(key);
    if (member === null || member.kind != ValueKind.String) return null;
    return member.str;
  }
}

// Wire types and field numbers of struct.proto.
const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const STRUCT_FIELDS = 1; // map<string, Value>, each entry a message {key = 1, value = 2}
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;
const VALUE_NULL = 1;
const VALUE_NUMBER = 2;
const VALUE_STRING = 3;
const VALUE_BOOL = 4;
const VALUE_STRUCT = 5;
const VALUE_LIST = 6;
const LIST_VALUES = 1;

function tag(field: i32, wire: i32): u8 {
  return <u8>((field << 3) | wire);
}

// ---- encoding

/** Enough for typical Istio peer metadata (about 350 bytes) after one doubling. */
const INITIAL_CAPACITY = 256;

/**
 * Fills a buffer from the back, as upb does: a nested message is written before its length
 * prefix, so every length is known when it is needed and nothing is measured twice.
 */
class BackwardWriter {
  buf: Uint8Array;
  start: i32;

  constructor(capacity: i32) {
    this.buf = new Uint8Array(capacity);
    this.start = capacity;
  }

  /** Bytes written so far; a length-delimited field's content is the growth since a mark. */
  get size(): i32 {
    return this.buf.length - this.start;
  }

  private room(n: i32): void {
    if (this.start >= n) return;
    const used = this.size;
    const capacity = max(this.buf.length << 1, used + n);
    const grown = new Uint8Array(capacity);
    grown.set(this.buf.subarray(this.start), capacity - used);
    this.buf = grown;
    this.start = capacity - used;
  }

  byte(b: u8): void {
    this.room(1);
    this.buf[--this.start] = b;
  }

  varint(value: u64): void {
    let n = 1;
    for (let rest = value >> 7; rest != 0; rest >>= 7) n++;
    this.room(n);
    this.start -= n;
    let p = this.start;
    while (value >= 0x80) {
      this.buf[p++] = <u8>(value | 0x80);
      value >>= 7;
    }
    this.buf[p] = <u8>value;
  }

  fixed64(value: u64): void {
    this.room(8);
    this.start -= 8;
    for (let i = 0; i < 8; i++) this.buf[this.start + i] = <u8>(value >> (<u64>i << 3));
  }

  bytes(data: Uint8Array): void {
    this.room(data.length);
    this.start -= data.length;
    this.buf.set(data, this.start);
  }

  /** Unpaired surrogates become U+FFFD: proto3 strings must be UTF-8, or C++ peers refuse the whole header. */
  utf8(s: string): void {
    const n = String.UTF8.byteLength(s);
    this.room(n);
    this.start -= n;
    String.UTF8.encodeUnsafe(
      changetype<usize>(s),
      s.length,
      this.buf.dataStart + <usize>this.start,
      false,
      String.UTF8.ErrorMode.REPLACE,
    );
  }

  /** Prefixes what was written since `mark` with its length and `fieldTag`. */
  delimit(mark: i32, fieldTag: u8): void {
    this.varint(<u64>(this.size - mark));
    this.byte(fieldTag);
  }

  finish(): Uint8Array {
    return this.buf.slice(this.start);
  }
}

class SortKey {
  constructor(
    public utf8: Uint8Array,
    public index: i32,
  ) {}
}

/** Bytewise on UTF-8, like C++'s std::string order; UTF-16 order differs above U+FFFF. */
function compareKeys(a: SortKey, b: SortKey): i32 {
  const common = min(a.utf8.length, b.utf8.length);
  for (let i = 0; i < common; i++) {
    const d = <i32>a.utf8[i] - <i32>b.utf8[i];
    if (d != 0) return d;
  }
  if (a.utf8.length != b.utf8.length) return a.utf8.length - b.utf8.length;
  // Equal keys only come from editing `keys` directly; the index keeps the output deterministic.
  return a.index - b.index;
}

function sortedKeys(s: PbValue): SortKey[] {
  const order: SortKey[] = [];
  for (let i = 0; i < s.keys.length; i++) {
    const utf8 = String.UTF8.encode(s.keys[i], false, String.UTF8.ErrorMode.REPLACE);
    order.push(new SortKey(Uint8Array.wrap(utf8), i));
  }
  order.sort(compareKeys);
  return order;
}

function writeStructFields(w: BackwardWriter, s: PbValue): void {
  const order = sortedKeys(s);
  // Back to front, so the entries come out in ascending key order.
  for (let i = order.length - 1; i >= 0; i--) {
    const key = order[i];
    const entryMark = w.size;
    // A map entry always carries both key and value, even "" or an empty Value (C++ MapEntry).
    writeValueFields(w, s.items[key.index]);
    w.delimit(entryMark, tag(ENTRY_VALUE, WIRE_LEN));
    const keyMark = w.size;
    w.bytes(key.utf8);
    w.delimit(keyMark, tag(ENTRY_KEY, WIRE_LEN));
    w.delimit(entryMark, tag(STRUCT_FIELDS, WIRE_LEN));
  }
}

/** The oneof case is always written, even at its default (null, 0, "", false, empty). */
function writeValueFields(w: BackwardWriter, v: PbValue): void {
  const mark = w.size;
  switch (v.kind) {
    case ValueKind.Null:
      w.varint(0);
      w.byte(tag(VALUE_NULL, WIRE_VARINT));
      break;
    case ValueKind.Number:
      w.fixed64(reinterpret<u64>(v.num));
      w.byte(tag(VALUE_NUMBER, WIRE_FIXED64));
      break;
    case ValueKind.String:
      w.utf8(v.str);
      w.delimit(mark, tag(VALUE_STRING, WIRE_LEN));
      break;
    case ValueKind.Bool:
      w.varint(v.flag ? 1 : 0);
      w.byte(tag(VALUE_BOOL, WIRE_VARINT));
      break;
    case ValueKind.Struct:
      writeStructFields(w, v);
      w.delimit(mark, tag(VALUE_STRUCT, WIRE_LEN));
      break;
    case ValueKind.List:
      for (let i = v.items.length - 1; i >= 0; i--) {
        const itemMark = w.size;
        writeValueFields(w, v.items[i]);
        w.delimit(itemMark, tag(LIST_VALUES, WIRE_LEN));
      }
      w.delimit(mark, tag(VALUE_LIST, WIRE_LEN));
      break;
  }
}

/**
 * Serializes a Struct exactly as C++ `SerializeToString` with deterministic serialization does:
 * map entries sorted bytewise by UTF-8 key at every level. The input is not reordered. Only
 * `keys`/`items` are read, so another kind built by the constructors encodes as the empty Struct.
 */
export function encodeStruct(s: PbValue): Uint8Array {
  const w = new BackwardWriter(INITIAL_CAPACITY);
  writeStructFields(w, s);
  return w.finish();
}

// ---- decoding

/** Switches a Value's oneof case as a protobuf parser does: a different case drops the old payload. */
function switchKind(v: PbValue, kind: ValueKind): void {
  if (v.kind == kind) return;
  v.kind = kind;
  v.str = "";
  v.num = 0;
  v.flag = false;
  v.keys.length = 0;
  v.items.length = 0;
}

/**
 * Keeps only the last member for each key, as a protobuf map does with repeated keys. Done once
 * per completed Struct rather than per entry, so hostile input with many keys stays linear.
 */
function dropShadowedKeys(s: PbValue): void {
  const n = s.keys.length;
  if (s.kind != ValueKind.Struct || n < 2) return;
  const seen = new Set<string>();
  // Backwards, so the last occurrence wins; survivors are packed towards the end in order.
  let kept = n;
  for (let i = n - 1; i >= 0; i--) {
    const key = s.keys[i];
    if (seen.has(key)) continue;
    seen.add(key);
    kept--;
    s.keys[kept] = key;
    s.items[kept] = s.items[i];
  }
  if (kept > 0) {
    s.keys = s.keys.slice(kept);
    s.items = s.items.slice(kept);
  }
}

/**
 * Recursive descent over the three messages. Every method returns false on malformed input and
 * reads only below `end`, the end of the message it is in, so a nested length cannot escape its
 * parent. Known fields with the wrong wire type are refused (C++ would keep them as unknown
 * fields; no real peer sends them).
 */
class Decoder {
  private pos: i32 = 0;
  /** The last varint read. */
  private scalar: u64 = 0;

  constructor(
    private bytes: Uint8Array,
    private maxDepth: i32,
  ) {}

  private varint(end: i32): bool {
    let value: u64 = 0;
    // At most ten bytes; bits past the 64th are dropped, as C++ does.
    for (let shift: u64 = 0; shift < 70; shift += 7) {
      if (this.pos >= end) return false;
      const b = this.bytes[this.pos++];
      value |= <u64>(b & 0x7f) << shift;
      if (b < 0x80) {
        this.scalar = value;
        return true;
      }
    }
    return false;
  }

  /** The next tag, or 0 when it is malformed (0 is never a valid tag: field numbers start at 1). */
  private tag(end: i32): u32 {
    if (!this.varint(end) || this.scalar > <u64>u32.MAX_VALUE) return 0;
    const t = <u32>this.scalar;
    return t >> 3 == 0 ? 0 : t;
  }

  /** A length prefix that fits in what is left of the message, or -1. */
  private length(end: i32): i32 {
    if (!this.varint(end)) return -1;
    return this.scalar <= <u64>(end - this.pos) ? <i32>this.scalar : -1;
  }

  private advance(n: i32, end: i32): bool {
    if (n > end - this.pos) return false;
    this.pos += n;
    return true;
  }

  private skip(wire: u32, end: i32): bool {
    switch (wire) {
      case WIRE_VARINT:
        return this.varint(end);
      case WIRE_FIXED64:
        return this.advance(8, end);
      case WIRE_LEN: {
        const n = this.length(end);
        return n >= 0 && this.advance(n, end);
      }
      case WIRE_FIXED32:
        return this.advance(4, end);
      default:
        return false; // groups (3, 4) and the undefined wire types 6 and 7
    }
  }

  private text(n: i32): string {
    const s = String.UTF8.decodeUnsafe(this.bytes.dataStart + <usize>this.pos, <usize>n);
    this.pos += n;
    return s;
  }

  /** Struct fields up to `end`, appended to `target`; `depth` counts enclosing Structs and Lists. */
  structFields(target: PbValue, end: i32, depth: i32): bool {
    if (depth > this.maxDepth) return false;
    while (this.pos < end) {
      const t = this.tag(end);
      if (t == 0) return false;
      if (t >> 3 == STRUCT_FIELDS) {
        if ((t & 7) != WIRE_LEN) return false;
        const n = this.length(end);
        if (n < 0 || !this.entry(target, this.pos + n, depth)) return false;
      } else if (!this.skip(t & 7, end)) return false;
    }
    return true;
  }

  private entry(target: PbValue, end: i32, depth: i32): bool {
    let key = "";
    // A missing value is an empty Value, which this model reads as Null; a repeated value field
    // merges into the same Value, as for any singular message field.
    const value = new PbValue();
    while (this.pos < end) {
      const t = this.tag(end);
      if (t == 0) return false;
      const field = t >> 3;
      if (field == ENTRY_KEY || field == ENTRY_VALUE) {
        if ((t & 7) != WIRE_LEN) return false;
        const n = this.length(end);
        if (n < 0) return false;
        if (field == ENTRY_KEY) key = this.text(n);
        else if (!this.valueFields(value, this.pos + n, depth)) return false;
      } else if (!this.skip(t & 7, end)) return false;
    }
    dropShadowedKeys(value);
    target.keys.push(key);
    target.items.push(value);
    return true;
  }

  private valueFields(v: PbValue, end: i32, depth: i32): bool {
    while (this.pos < end) {
      const t = this.tag(end);
      if (t == 0) return false;
      const wire = t & 7;
      switch (t >> 3) {
        case VALUE_NULL: {
          // proto3 enums are open: any number is kept as null_value.
          if (wire != WIRE_VARINT || !this.varint(end)) return false;
          switchKind(v, ValueKind.Null);
          break;
        }
        case VALUE_NUMBER: {
          if (wire != WIRE_FIXED64 || end - this.pos < 8) return false;
          switchKind(v, ValueKind.Number);
          v.num = load<f64>(this.bytes.dataStart + <usize>this.pos); // little-endian, as on the wire
          this.pos += 8;
          break;
        }
        case VALUE_STRING: {
          if (wire != WIRE_LEN) return false;
          const n = this.length(end);
          if (n < 0) return false;
          switchKind(v, ValueKind.String);
          v.str = this.text(n);
          break;
        }
        case VALUE_BOOL: {
          if (wire != WIRE_VARINT || !this.varint(end)) return false;
          switchKind(v, ValueKind.Bool);
          v.flag = this.scalar != 0;
          break;
        }
        case VALUE_STRUCT: {
          if (wire != WIRE_LEN) return false;
          const n = this.length(end);
          if (n < 0) return false;
          // A second struct_value merges into the first: entries accumulate, later keys win.
          switchKind(v, ValueKind.Struct);
          if (!this.structFields(v, this.pos + n, depth + 1)) return false;
          break;
        }
        case VALUE_LIST: {
          if (wire != WIRE_LEN) return false;
          const n = this.length(end);
          if (n < 0) return false;
          // A second list_value merges into the first: repeated fields concatenate.
          switchKind(v, ValueKind.List);
          if (!this.listFields(v, this.pos + n, depth + 1)) return false;
          break;
        }
        default:
          if (!this.skip(wire, end)) return false;
      }
    }
    return true;
  }

  private listFields(list: PbValue, end: i32, depth: i32): bool {
    if (depth > this.maxDepth) return false;
    while (this.pos < end) {
      const t = this.tag(end);
      if (t == 0) return false;
      if (t >> 3 == LIST_VALUES) {
        if ((t & 7) != WIRE_LEN) return false;
        const n = this.length(end);
        if (n < 0) return false;
        const item = new PbValue();
        if (!this.valueFields(item, this.pos + n, depth)) return false;
        dropShadowedKeys(item);
        list.items.push(item);
      } else if (!this.skip(t & 7, end)) return false;
    }
    return true;
  }
}

/**
 * Parses a serialized Struct, or returns null when the bytes are malformed: truncated varints or
 * lengths, lengths past their message, wrong wire types on known fields, groups, or Structs and
 * Lists nested deeper than `maxDepth` (the top-level Struct is depth 1; recursion is bounded by
 * it, so callers must keep it small). Unknown fields are skipped; of repeated map keys the last
 * wins; invalid UTF-8 is decoded leniently rather than refused.
 */
export function decodeStruct(bytes: Uint8Array, maxDepth: i32 = 16): PbValue | null {
  const root = PbValue.struct();
  if (!new Decoder(bytes, maxDepth).structFields(root, bytes.length, 1)) return null;
  dropShadowedKeys(root);
  return root;
}
