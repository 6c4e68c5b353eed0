// A small JSON reader for plugin configuration. It keeps each value's byte offset so that
// a refused configuration can name the position, and it reports errors instead of throwing.

export const enum JsonKind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

export class JsonValue {
  kind: JsonKind = JsonKind.Null;
  pos: i32 = 0;
  boolValue: bool = false;
  numberValue: f64 = 0;
  stringValue: string = "";
  items: JsonValue[] = [];
  keys: string[] = [];

  /** Member of an object, or null. Objects are small, so a linear scan is fine. */
  get(key: string): JsonValue | null {
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) return this.items[i];
    }
    return null;
  }

  kindName(): string {
    switch (this.kind) {
      case JsonKind.Null: return "null";
      case JsonKind.Bool: return "boolean";
      case JsonKind.Number: return "number";
      case JsonKind.String: return "string";
      case JsonKind.Array: return "array";
      default: return "object";
    }
  }
}

/** Nesting deeper than this is refused, so hostile input cannot exhaust the stack. */
const MAX_DEPTH = 64;

export class JsonParser {
  error: string = "";
  errorPos: i32 = -1;
  private s: string;
  private i: i32 = 0;

  constructor(text: string) {
    this.s = text;
  }

  /** The parsed document, or null with `error` and `errorPos` set. */
  parse(): JsonValue | null {
    this.skipSpace();
    const value = this.value(0);
    if (value === null) return null;
    this.skipSpace();
    if (this.i < this.s.length) return this.fail("unexpected trailing characters");
    return value;
  }

  private fail(message: string): JsonValue | null {
    if (this.errorPos < 0) {
      this.error = message;
      this.errorPos = this.i;
    }
    return null;
  }

  private skipSpace(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
      this.i++;
    }
  }

  private value(depth: i32): JsonValue | null {
    if (depth > MAX_DEPTH) return this.fail("nesting deeper than " + MAX_DEPTH.toString());
    if (this.i >= this.s.length) return this.fail("unexpected end of input");
    const c = this.s.charCodeAt(this.i);
    if (c == 0x7b /* { */) return this.object(depth);
    if (c == 0x5b /* [ */) return this.array(depth);
    if (c == 0x22 /* " */) {
      const v = new JsonValue();
      v.kind = JsonKind.String;
      v.pos = this.i;
      const str = this.string();
      if (str === null) return null;
      v.stringValue = str;
      return v;
    }
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    if (this.literal("true")) return this.boolValue(true);
    if (this.literal("false")) return this.boolValue(false);
    if (this.literal("null")) {
      const v = new JsonValue();
      v.pos = this.i - 4;
      return v;
    }
    return this.fail("unexpected character '" + String.fromCharCode(c) + "'");
  }

  private boolValue(b: bool): JsonValue {
    const v = new JsonValue();
    v.kind = JsonKind.Bool;
    v.boolValue = b;
    v.pos = this.i - (b ? 4 : 5);
    return v;
  }

  private literal(word: string): bool {
    if (this.s.substr(this.i, word.length) == word) {
      this.i += word.length;
      return true;
    }
    return false;
  }

  private object(depth: i32): JsonValue | null {
    const v = new JsonValue();
    v.kind = JsonKind.Object;
    v.pos = this.i;
    this.i++; // {
    this.skipSpace();
    if (this.i < this.s.length && this.s.charCodeAt(this.i) == 0x7d) {
      this.i++;
      return v;
    }
    while (true) {
      this.skipSpace();
      if (this.i >= this.s.length || this.s.charCodeAt(this.i) != 0x22) return this.fail("expected a member name");
      const keyPos = this.i;
      const key = this.string();
      if (key === null) return null;
      for (let k = 0; k < v.keys.length; k++) {
        if (v.keys[k] == key) {
          this.i = keyPos;
          return this.fail("duplicate member '" + key + "'");
        }
      }
      this.skipSpace();
      if (this.i >= this.s.length || this.s.charCodeAt(this.i) != 0x3a) return this.fail("expected ':'");
      this.i++;
      this.skipSpace();
      const item = this.value(depth + 1);
      if (item === null) return null;
      v.keys.push(key);
      v.items.push(item);
      this.skipSpace();
      if (this.i >= this.s.length) return this.fail("unterminated object");
      const c = this.s.charCodeAt(this.i++);
      if (c == 0x7d) return v;
      if (c != 0x2c) {
        this.i--;
        return this.fail("expected ',' or '}'");
      }
    }
  }

  private array(depth: i32): JsonValue | null {
    const v = new JsonValue();
    v.kind = JsonKind.Array;
    v.pos = this.i;
    this.i++; // [
    this.skipSpace();
    if (this.i < this.s.length && this.s.charCodeAt(this.i) == 0x5d) {
      this.i++;
      return v;
    }
    while (true) {
      this.skipSpace();
      const item = this.value(depth + 1);
      if (item === null) return null;
      v.items.push(item);
      this.skipSpace();
      if (this.i >= this.s.length) return this.fail("unterminated array");
      const c = this.s.charCodeAt(this.i++);
      if (c == 0x5d) return v;
      if (c != 0x2c) {
        this.i--;
        return this.fail("expected ',' or ']'");
      }
    }
  }

  private number(): JsonValue | null {
    const start = this.i;
    const s = this.s;
    if (s.charCodeAt(this.i) == 0x2d) this.i++;
    const digitsStart = this.i;
    while (this.i < s.length && isDigit(s.charCodeAt(this.i))) this.i++;
    if (this.i == digitsStart) return this.fail("malformed number");
    if (s.charCodeAt(digitsStart) == 0x30 && this.i - digitsStart > 1) {
      this.i = digitsStart + 1;
      return this.fail("leading zero in number");
    }
    if (this.i < s.length && s.charCodeAt(this.i) == 0x2e) {
      this.i++;
      const frac = this.i;
      while (this.i < s.length && isDigit(s.charCodeAt(this.i))) this.i++;
      if (this.i == frac) return this.fail("malformed number");
    }
    if (this.i < s.length && (s.charCodeAt(this.i) | 0x20) == 0x65) {
      this.i++;
      if (this.i < s.length && (s.charCodeAt(this.i) == 0x2b || s.charCodeAt(this.i) == 0x2d)) this.i++;
      const exp = this.i;
      while (this.i < s.length && isDigit(s.charCodeAt(this.i))) this.i++;
      if (this.i == exp) return this.fail("malformed number");
    }
    const v = new JsonValue();
    v.kind = JsonKind.Number;
    v.pos = start;
    v.numberValue = decimalValue(s, start, this.i);
    return v;
  }

  /** Reads a string literal starting at the opening quote; returns null on error. */
  private string(): string | null {
    const s = this.s;
    this.i++; // opening quote
    let out = "";
    let chunk = this.i;
    while (true) {
      if (this.i >= s.length) {
        this.fail("unterminated string");
        return null;
      }
      const c = s.charCodeAt(this.i);
      if (c == 0x22) {
        out += s.substring(chunk, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) {
        this.fail("control character in string");
        return null;
      }
      if (c == 0x5c) {
        out += s.substring(chunk, this.i);
        this.i++;
        if (this.i >= s.length) {
          this.fail("unterminated escape");
          return null;
        }
        const e = s.charCodeAt(this.i++);
        if (e == 0x22) out += "\"";
        else if (e == 0x5c) out += "\\";
        else if (e == 0x2f) out += "/";
        else if (e == 0x62) out += "\b";
        else if (e == 0x66) out += "\f";
        else if (e == 0x6e) out += "\n";
        else if (e == 0x72) out += "\r";
        else if (e == 0x74) out += "\t";
        else if (e == 0x75) {
          let code = 0;
          for (let k = 0; k < 4; k++) {
            const h = this.i < s.length ? hexValue(s.charCodeAt(this.i)) : -1;
            if (h < 0) {
              this.fail("malformed \\u escape");
              return null;
            }
            code = (code << 4) | h;
            this.i++;
          }
          out += String.fromCharCode(code);
        } else {
          this.i--;
          this.fail("unknown escape");
          return null;
        }
        chunk = this.i;
        continue;
      }
      this.i++;
    }
  }
}

function isDigit(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}

export function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/**
 * The value of a decimal number already checked by the parser ([-]digits[.digits][e[+-]digits]).
 * Plain arithmetic rather than parseFloat, which would add a large conversion routine and its
 * tables to the module; configuration numbers need no more precision than this gives.
 */
export function decimalValue(s: string, start: i32, end: i32): f64 {
  let i = start;
  let negative = false;
  if (i < end && s.charCodeAt(i) == 0x2d) {
    negative = true;
    i++;
  }
  let value: f64 = 0;
  while (i < end && isDigit(s.charCodeAt(i))) value = value * 10 + <f64>(s.charCodeAt(i++) - 0x30);
  if (i < end && s.charCodeAt(i) == 0x2e) {
    i++;
    let scale: f64 = 1;
    while (i < end && isDigit(s.charCodeAt(i))) {
      scale /= 10;
      value += <f64>(s.charCodeAt(i++) - 0x30) * scale;
    }
  }
  if (i < end && (s.charCodeAt(i) | 0x20) == 0x65) {
    i++;
    let expNegative = false;
    if (i < end && (s.charCodeAt(i) == 0x2b || s.charCodeAt(i) == 0x2d)) expNegative = s.charCodeAt(i++) == 0x2d;
    let exp = 0;
    while (i < end && isDigit(s.charCodeAt(i)) && exp < 1000) exp = exp * 10 + (s.charCodeAt(i++) - 0x30);
    for (let k = 0; k < exp && value != 0 && value != Infinity; k++) value = expNegative ? value / 10 : value * 10;
  }
  return negative ? -value : value;
}
