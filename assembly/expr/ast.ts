// Compiled attribute expressions and their evaluation. The parser (parser.ts) builds an `Expr`
// once at configure time; the plugin evaluates it per request against an `AttributeSource`.
//
// Evaluation allocates almost nothing: every node is its own result register (kind, bytes,
// num), string values stay the UTF-8 bytes the host returned (literals are encoded at compile
// time, so comparisons and startsWith/endsWith/contains compare bytes), and each distinct
// property path has a memo slot so an attribute named twice is fetched once per evaluation.
// The allocations left are the ones the caller asks for: the decoded string of
// evaluateToString, the IntResult of evaluateToInt, and the digits of string(int).
// Evaluation is not re-entrant (one Expr is evaluated by one caller at a time, as in a VM).
//
// Errors are values: a missing attribute, a wrongly-sized int, int('x') or an ordering between
// different kinds all yield Kind.Missing, which propagates through every operator except
// `|` (which replaces it), `&&`/`||` (false/true absorb it, as in CEL) and has(). Nothing traps.
import { Encoding } from "./attributes";

/** The host side: a property read. null when the attribute is absent. */
export abstract class AttributeSource {
  /** `path` is NUL-joined UTF-8 segments, exactly as proxy_get_property takes it. */
  abstract property(path: ArrayBuffer): ArrayBuffer | null;
}

/** A source without attributes (every property is missing); also used for constant folding. */
export class NoAttributes extends AttributeSource {
  property(_path: ArrayBuffer): ArrayBuffer | null {
    return null;
  }
}

/** Runtime kind of a value. */
export const enum Kind {
  /** No value: an absent attribute or an error. */
  Missing = 0,
  /** The literal `null`. */
  Null = 1,
  String = 2,
  Int = 3,
  Bool = 4,
}

/** Compile-time type of a node; Dyn when it depends on the request (e.g. `response.code | 'x'`). */
export const enum StaticType {
  Null = 0,
  String = 1,
  Int = 2,
  Bool = 3,
  Dyn = 4,
}

export function staticTypeName(t: StaticType): string {
  switch (t) {
    case StaticType.Null: return "null";
    case StaticType.String: return "string";
    case StaticType.Int: return "int";
    case StaticType.Bool: return "bool";
    default: return "dyn";
  }
}

export const enum Op {
  /** A value known at compile time (literal, node metadata, folded subexpression). */
  Const = 0,
  /** A property read: `slot` into Expr.paths, decoded by `encoding`. */
  Attr,
  /** `a | b | ...`: the first child that is not missing. */
  Default,
  /** `a || b || ...` */
  Or,
  /** `a && b && ...` */
  And,
  Not,
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,
  ToString,
  ToInt,
  /** has(attribute): the attribute is present. */
  Has,
  /** size(string): its length in UTF-8 bytes. */
  Size,
  StartsWith,
  EndsWith,
  Contains,
  /** `a + b`: two strings concatenated, or two ints added (overflow is missing). */
  Add,
}

const EMPTY = new ArrayBuffer(0);
const TRUE_BYTES = String.UTF8.encode("true");
const FALSE_BYTES = String.UTF8.encode("false");

/** One node of a compiled expression; also the register that holds its last result. */
export class Node {
  op: Op;
  /** Offset of the node in the expression text (for compile errors). */
  pos: i32;
  type: StaticType = StaticType.Dyn;
  children: Node[] = [];
  /** Attr: index into Expr.paths. */
  slot: i32 = -1;
  encoding: Encoding = Encoding.String;
  /** Written as an attribute path (a property read or node metadata): has() accepts it. */
  attribute: bool = false;

  // Result register.
  kind: Kind = Kind.Missing;
  /** The value of a String. */
  bytes: ArrayBuffer = EMPTY;
  /** The value of an Int, or of a Bool (0 or 1). */
  num: i64 = 0;

  constructor(op: Op, pos: i32) {
    this.op = op;
    this.pos = pos;
  }

  setMissing(): void {
    this.kind = Kind.Missing;
    this.bytes = EMPTY;
  }

  setString(bytes: ArrayBuffer): void {
    this.kind = Kind.String;
    this.bytes = bytes;
  }

  setInt(v: i64): void {
    this.kind = Kind.Int;
    this.num = v;
  }

  setBool(v: bool): void {
    this.kind = Kind.Bool;
    this.num = v ? 1 : 0;
  }

  setNull(): void {
    this.kind = Kind.Null;
  }

  copyFrom(other: Node): void {
    this.kind = other.kind;
    this.bytes = other.bytes;
    this.num = other.num;
  }
}

/** A compiled expression. Build it with compileExpression (parser.ts). */
export class Expr {
  root: Node;
  /** The distinct property paths the expression reads, NUL-joined UTF-8 (one memo slot each). */
  paths: ArrayBuffer[] = [];
  /** The same paths as text, segments joined by '.', for logs and tests. */
  pathNames: string[] = [];
  /** Dedup keys (segments joined by NUL) of `paths`; compile time only. */
  pathKeys: string[] = [];
  private memo: Array<ArrayBuffer | null> = [];
  private memoGen: u32[] = [];
  private gen: u32 = 0;

  constructor() {
    this.root = new Node(Op.Const, 0);
  }

  /** The compile-time type of the result. */
  get type(): StaticType {
    return this.root.type;
  }

  /** True when the value was fully known at compile time: evaluation makes no host call. */
  isConstant(): bool {
    return this.root.op == Op.Const;
  }

  /** Memo slot for a path, adding it on first use. Compile time only. */
  slotFor(key: string, path: ArrayBuffer, name: string): i32 {
    for (let i = 0; i < this.pathKeys.length; i++) {
      if (unchecked(this.pathKeys[i]) == key) return i;
    }
    this.pathKeys.push(key);
    this.paths.push(path);
    this.pathNames.push(name);
    this.memo.push(null);
    this.memoGen.push(0);
    return this.paths.length - 1;
  }

  /** Starts an evaluation: forgets the previous one's property reads without clearing them. */
  begin(): void {
    this.gen++;
    if (this.gen == 0) {
      // Wrapped after 2^32 evaluations: reset so no stale slot matches.
      for (let i = 0; i < this.memoGen.length; i++) unchecked((this.memoGen[i] = 0));
      this.gen = 1;
    }
  }

  /** Drops the last evaluation's buffers (optional; they are replaced by the next one anyway). */
  end(): void {
    for (let i = 0; i < this.memo.length; i++) unchecked((this.memo[i] = null));
  }

  fetch(slot: i32, source: AttributeSource): ArrayBuffer | null {
    if (slot < 0 || slot >= this.paths.length) return null;
    if (unchecked(this.memoGen[slot]) != this.gen) {
      unchecked((this.memo[slot] = source.property(unchecked(this.paths[slot]))));
      unchecked((this.memoGen[slot] = this.gen));
    }
    return unchecked(this.memo[slot]);
  }
}

/** evaluateToInt's answer: `present` is false when the value is missing or not an integer. */
export class IntResult {
  present: bool = false;
  value: i64 = 0;
}

const SCRATCH_INT = new IntResult();

/** evaluateToBool's answer. */
export const enum Truth {
  False = 0,
  True = 1,
  /** Missing, or not a bool. */
  Missing = 2,
}

function run(expr: Expr, source: AttributeSource): Node {
  expr.begin();
  const root = expr.root;
  evalNode(root, expr, source);
  expr.end();
  return root;
}

/**
 * For dimensions (labels): the value as text. Strings as they are, ints in decimal, bools as
 * "true"/"false"; null when the value is missing (or the literal null).
 */
export function evaluateToString(expr: Expr, source: AttributeSource): string | null {
  const v = run(expr, source);
  switch (v.kind) {
    case Kind.String: return String.UTF8.decode(v.bytes);
    case Kind.Int: return v.num.toString();
    case Kind.Bool: return v.num != 0 ? "true" : "false";
    default: return null;
  }
}

/**
 * For metric definition values: the value as an integer. An int as it is; a string holding a
 * decimal integer (e.g. a header) is parsed; anything else (missing, bool, null, other text)
 * gives present = false.
 */
export function evaluateToInt(expr: Expr, source: AttributeSource): IntResult {
  const v = run(expr, source);
  const out = new IntResult();
  if (v.kind == Kind.Int) {
    out.present = true;
    out.value = v.num;
  } else if (v.kind == Kind.String) {
    parseDecimal(v.bytes, out);
  }
  return out;
}

/** For filters: True or False for a bool value, Missing for anything else. */
export function evaluateToBool(expr: Expr, source: AttributeSource): Truth {
  const v = run(expr, source);
  if (v.kind != Kind.Bool) return Truth.Missing;
  return v.num != 0 ? Truth.True : Truth.False;
}

/** Evaluates one node into its register. The parser also uses it to fold constants. */
export function evalNode(n: Node, expr: Expr, source: AttributeSource): void {
  const kids = n.children;
  switch (n.op) {
    case Op.Const:
      return;
    case Op.Attr: {
      const b = expr.fetch(n.slot, source);
      if (b === null) {
        n.setMissing();
        return;
      }
      decodeProperty(n, b);
      return;
    }
    case Op.Default: {
      for (let i = 0; i < kids.length; i++) {
        const c = unchecked(kids[i]);
        evalNode(c, expr, source);
        if (c.kind != Kind.Missing) {
          n.copyFrom(c);
          return;
        }
      }
      n.setMissing();
      return;
    }
    case Op.Or:
    case Op.And: {
      // CEL's commutative logic: the absorbing value wins over a missing operand.
      const absorbing: i64 = n.op == Op.Or ? 1 : 0;
      let sawMissing = false;
      for (let i = 0; i < kids.length; i++) {
        const c = unchecked(kids[i]);
        evalNode(c, expr, source);
        if (c.kind != Kind.Bool) {
          sawMissing = true;
        } else if (c.num == absorbing) {
          n.setBool(absorbing != 0);
          return;
        }
      }
      if (sawMissing) n.setMissing();
      else n.setBool(absorbing == 0);
      return;
    }
    case Op.Not: {
      const c = unchecked(kids[0]);
      evalNode(c, expr, source);
      if (c.kind == Kind.Bool) n.setBool(c.num == 0);
      else n.setMissing();
      return;
    }
    case Op.Eq:
    case Op.Ne:
    case Op.Lt:
    case Op.Le:
    case Op.Gt:
    case Op.Ge: {
      const a = unchecked(kids[0]);
      evalNode(a, expr, source);
      if (a.kind == Kind.Missing) {
        n.setMissing();
        return;
      }
      const b = unchecked(kids[1]);
      evalNode(b, expr, source);
      if (b.kind == Kind.Missing) {
        n.setMissing();
        return;
      }
      compare(n, a, b);
      return;
    }
    case Op.ToString: {
      const c = unchecked(kids[0]);
      evalNode(c, expr, source);
      if (c.kind == Kind.String) n.setString(c.bytes);
      else if (c.kind == Kind.Int) n.setString(decimalBytes(c.num));
      else if (c.kind == Kind.Bool) n.setString(c.num != 0 ? TRUE_BYTES : FALSE_BYTES);
      else n.setMissing();
      return;
    }
    case Op.ToInt: {
      const c = unchecked(kids[0]);
      evalNode(c, expr, source);
      if (c.kind == Kind.Int) {
        n.setInt(c.num);
      } else if (c.kind == Kind.String) {
        const r = SCRATCH_INT;
        parseDecimal(c.bytes, r);
        if (r.present) n.setInt(r.value);
        else n.setMissing();
      } else {
        n.setMissing();
      }
      return;
    }
    case Op.Has: {
      const c = unchecked(kids[0]);
      // Only a property read reaches here (node metadata is folded at compile time); the
      // bytes need not be decoded.
      if (c.op == Op.Attr) {
        n.setBool(expr.fetch(c.slot, source) !== null);
      } else {
        evalNode(c, expr, source);
        n.setBool(c.kind != Kind.Missing);
      }
      return;
    }
    case Op.Size: {
      const c = unchecked(kids[0]);
      evalNode(c, expr, source);
      if (c.kind == Kind.String) n.setInt(c.bytes.byteLength);
      else n.setMissing();
      return;
    }
    case Op.StartsWith:
    case Op.EndsWith:
    case Op.Contains: {
      const a = unchecked(kids[0]);
      evalNode(a, expr, source);
      if (a.kind != Kind.String) {
        n.setMissing();
        return;
      }
      const b = unchecked(kids[1]);
      evalNode(b, expr, source);
      if (b.kind != Kind.String) {
        n.setMissing();
        return;
      }
      const hay = a.bytes;
      const needle = b.bytes;
      if (n.op == Op.StartsWith) n.setBool(bytesAt(hay, 0, needle));
      else if (n.op == Op.EndsWith) n.setBool(bytesAt(hay, hay.byteLength - needle.byteLength, needle));
      else n.setBool(bytesIndexOf(hay, needle) >= 0);
      return;
    }
    case Op.Add: {
      const a = unchecked(kids[0]);
      evalNode(a, expr, source);
      const b = unchecked(kids[1]);
      if (a.kind != Kind.String && a.kind != Kind.Int) {
        n.setMissing();
        return;
      }
      evalNode(b, expr, source);
      if (a.kind != b.kind) n.setMissing();
      else if (a.kind == Kind.String) n.setString(concatBytes(a.bytes, b.bytes));
      else {
        const sum = a.num + b.num;
        // Signed overflow: both operands have the sign the result lacks.
        if (((a.num ^ sum) & (b.num ^ sum)) < 0) n.setMissing();
        else n.setInt(sum);
      }
      return;
    }
    default:
      n.setMissing();
  }
}

function concatBytes(a: ArrayBuffer, b: ArrayBuffer): ArrayBuffer {
  const la = a.byteLength;
  const lb = b.byteLength;
  if (lb == 0) return a;
  if (la == 0) return b;
  const out = new ArrayBuffer(la + lb);
  memory.copy(changetype<usize>(out), changetype<usize>(a), la);
  memory.copy(changetype<usize>(out) + <usize>la, changetype<usize>(b), lb);
  return out;
}

function decodeProperty(n: Node, b: ArrayBuffer): void {
  switch (n.encoding) {
    case Encoding.Int:
    case Encoding.Duration:
    case Encoding.Timestamp:
      if (b.byteLength == 8) n.setInt(load<i64>(changetype<usize>(b)));
      else n.setMissing();
      return;
    case Encoding.Bool:
      if (b.byteLength == 1) n.setBool(load<u8>(changetype<usize>(b)) != 0);
      else n.setMissing();
      return;
    default:
      n.setString(b);
  }
}

/** a and b are both present. Equality across kinds is false; ordering across kinds is missing. */
function compare(n: Node, a: Node, b: Node): void {
  const op = n.op;
  if (a.kind != b.kind) {
    if (op == Op.Eq) n.setBool(false);
    else if (op == Op.Ne) n.setBool(true);
    else n.setMissing();
    return;
  }
  let c: i32 = 0;
  if (a.kind == Kind.String) {
    if (op == Op.Eq || op == Op.Ne) {
      const eq = bytesEqual(a.bytes, b.bytes);
      n.setBool(op == Op.Eq ? eq : !eq);
      return;
    }
    c = compareBytes(a.bytes, b.bytes);
  } else if (a.kind == Kind.Int || a.kind == Kind.Bool) {
    c = a.num < b.num ? -1 : a.num > b.num ? 1 : 0;
  } else {
    // Null == null; null has no order.
    if (op == Op.Eq) n.setBool(true);
    else if (op == Op.Ne) n.setBool(false);
    else n.setMissing();
    return;
  }
  switch (op) {
    case Op.Eq: n.setBool(c == 0); return;
    case Op.Ne: n.setBool(c != 0); return;
    case Op.Lt: n.setBool(c < 0); return;
    case Op.Le: n.setBool(c <= 0); return;
    case Op.Gt: n.setBool(c > 0); return;
    default: n.setBool(c >= 0);
  }
}

function bytesEqual(a: ArrayBuffer, b: ArrayBuffer): bool {
  const n = a.byteLength;
  if (n != b.byteLength) return false;
  return memory.compare(changetype<usize>(a), changetype<usize>(b), n) == 0;
}

/** Byte-wise (= Unicode code point) order, the shorter first on a common prefix. */
function compareBytes(a: ArrayBuffer, b: ArrayBuffer): i32 {
  const la = a.byteLength;
  const lb = b.byteLength;
  const c = memory.compare(changetype<usize>(a), changetype<usize>(b), la < lb ? la : lb);
  if (c != 0) return c;
  return la < lb ? -1 : la > lb ? 1 : 0;
}

/** `needle` occurs in `hay` at byte offset `at`. */
function bytesAt(hay: ArrayBuffer, at: i32, needle: ArrayBuffer): bool {
  const n = needle.byteLength;
  if (at < 0 || at + n > hay.byteLength) return false;
  return memory.compare(changetype<usize>(hay) + <usize>at, changetype<usize>(needle), n) == 0;
}

function bytesIndexOf(hay: ArrayBuffer, needle: ArrayBuffer): i32 {
  const last = hay.byteLength - needle.byteLength;
  for (let i = 0; i <= last; i++) {
    if (bytesAt(hay, i, needle)) return i;
  }
  return -1;
}

/** The decimal digits of v as UTF-8 bytes. */
export function decimalBytes(v: i64): ArrayBuffer {
  const neg = v < 0;
  let u: u64 = neg ? <u64>0 - <u64>v : <u64>v; // also right for i64.MIN_VALUE
  let len: i32 = neg ? 1 : 0;
  let t = u;
  do {
    len++;
    t /= 10;
  } while (t != 0);
  const out = new ArrayBuffer(len);
  const p = changetype<usize>(out);
  let i = len;
  do {
    i--;
    store<u8>(p + <usize>i, <u8>(0x30 + <i32>(u % 10)));
    u /= 10;
  } while (u != 0);
  if (neg) store<u8>(p, 0x2d);
  return out;
}

/** Parses an optionally '-'-signed decimal integer that fills `b`; present = false otherwise. */
export function parseDecimal(b: ArrayBuffer, out: IntResult): void {
  out.present = false;
  out.value = 0;
  const len = b.byteLength;
  const p = changetype<usize>(b);
  let i = 0;
  let neg = false;
  if (len > 0 && load<u8>(p) == 0x2d) {
    neg = true;
    i = 1;
  }
  if (i >= len) return;
  // Accumulate as a negative number so i64.MIN_VALUE fits.
  let acc: i64 = 0;
  const limit: i64 = i64.MIN_VALUE;
  for (; i < len; i++) {
    const c = <i32>load<u8>(p + <usize>i);
    if (c < 0x30 || c > 0x39) return;
    const d = <i64>(c - 0x30);
    if (acc < (limit + d) / 10) return; // acc * 10 - d would overflow
    acc = acc * 10 - d;
  }
  if (!neg) {
    if (acc == i64.MIN_VALUE) return;
    acc = -acc;
  }
  out.present = true;
  out.value = acc;
}
