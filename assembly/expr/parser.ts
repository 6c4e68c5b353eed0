// Compiler for the attribute expressions of Istio's Telemetry `tagOverrides` and the stats
// plugin's `metrics[].dimensions` / `definitions[].value`: a CEL subset plus Istio's `|` default
// operator. It runs once at configure time and reports every error by value, with its offset;
// the result (ast.ts) is evaluated per request with as few host calls as possible.
//
// GRAMMAR (lowest precedence first; whitespace — space, tab, CR, LF — may separate any tokens)
//
//   expr     = or { "|" or }                  default: the first operand that is not missing
//   or       = and { "||" and }               bool operands
//   and      = rel { "&&" rel }               bool operands
//   rel      = sum [ relop sum ]              relop: == != < <= > >= ; they do not chain
//   sum      = unary { "+" unary }            two strings (concatenated) or two ints (added)
//   unary    = "!" unary | postfix            bool operand
//   postfix  = primary { "." method "(" [ expr { "," expr } ] ")" }
//   primary  = "(" expr ")" | literal | call | path
//   call     = ( "string" | "int" | "has" | "size" ) "(" expr ")"
//   method   = "startsWith" | "endsWith" | "contains"   (one string argument)  | "size"  (none)
//   path     = root { "." name | "[" key "]" }
//   key      = string literal | non-negative decimal integer (becomes its decimal text)
//   root     = request | response | connection | upstream | source | destination | metadata
//            | filter_state | xds | plugin_name | plugin_root_id | plugin_vm_id | node
//   name     = [A-Za-z_][A-Za-z0-9_]*
//   literal  = string | integer | "true" | "false" | "null"
//   string   = '...' or "..." ; escapes \\ \' \" \` \? \a \b \f \n \r \t \v, \xHH, \uHHHH,
//              \UHHHHHHHH, \ooo (octal, first digit 0-3) — each \x, \u, \U and octal escape is a
//              Unicode code point (no surrogates, at most U+10FFFF); no raw newline inside
//   integer  = [ "-" ] ( "0" | [1-9][0-9]* ), within i64
//
// MEANING
//   - A path becomes a property path for proxy_get_property: its segments (names, string keys,
//     integer keys as decimal text) UTF-8 encoded and joined by NUL, built once here.
//     `request.headers['x-user-tier']` is ["request", "headers", "x-user-tier"];
//     `xds.cluster_metadata.filter_metadata.istio.services[0].name` has the segment "0".
//     Each distinct path is read at most once per evaluation.
//   - Node metadata — `node.metadata['K']`, `node.metadata.K`, `xds.node.metadata['K']`,
//     `xds.node.metadata.K`, and fields of its maps either way (`xds.node.metadata.LABELS.version`,
//     `xds.node.metadata['LABELS'].app`) — is a constant: the ConstantResolver answers it here,
//     never per request. An absent key is a
//     missing value, so `node.metadata['X'] | 'unknown'` works. Other `xds.node.*` paths are
//     ordinary properties; `node.` other than `node.metadata` is refused.
//   - Values are missing, null, string, int (i64) or bool. The type of a property comes from
//     the table in attributes.ts (response.code int, request.duration int nanoseconds,
//     connection.mtls bool, ...); any attribute not in it is a string.
//   - `filter_state['key']` / `filter_state.key.field` read Envoy's filter state like any other
//     property (the plugin answers Istio's `filter_state.upstream_peer.*` / `downstream_peer.*`
//     itself, plugin/expressions.ts); a list element is an integer key (`services[0]`), resolved
//     by Envoy.
//   - a + b: strings concatenate, ints add (overflow is missing); other operands are missing.
//   - Missing (absent attribute, or an error such as int('abc')) propagates through every
//     operator except: `a | b` (b when a is missing), `||` / `&&` (true / false win over a
//     missing operand, as in CEL) and has(). Short-circuit: an operand whose result cannot
//     change the value is not evaluated, so its attribute is not read.
//   - `==` / `!=` between values of different kinds are false / true; `null == null`. Ordering
//     works on two ints, two bools or two strings (byte order = code point order); anything
//     else is missing.
//   - string(x): int in decimal, bool as "true"/"false", string unchanged. int(x): int
//     unchanged, string holding a decimal integer (optional '-'), else missing. has(path): the
//     attribute is present (its bytes are not decoded). size(x) / x.size(): string length in
//     UTF-8 bytes (CEL counts code points). x.startsWith(s), x.endsWith(s), x.contains(s): on
//     strings, byte-wise.
//   - Static types are checked here: `response.code == '200'` or `request.host && true` is a
//     compile error, not a silently false metric. An operand whose type depends on the request
//     (e.g. `response.code | 'none'`) is checked when evaluated instead.
//
// ERRORS, as Istio's stats filter treats them (it parses expressions and evaluates them
// untyped): CompileResult.syntax is true when the text does not parse (Istio drops such a
// dimension) and false when it parses but cannot be evaluated — an unknown attribute root,
// function or method, a wrong arity, operands of the wrong type — which Istio reports as
// `unknown` (config/metrics.ts turns both into a logged warning, not a refusal). After an error
// of meaning the text is parsed once more for syntax only, so `cannot _ parse` is a syntax error
// although `cannot` is also an unknown root. Constructs this compiler does not support (below)
// count as syntax errors, even where CEL would parse them.
//   - Subexpressions fully known at compile time (literals, node metadata) are folded: e.g.
//     `node.metadata['NAME'] | 'unknown'` compiles to a constant, `false && x` to false.
//
// NOT SUPPORTED (a compile error where it could be written): arithmetic other than + (- * / %)
// and unary minus except directly before an integer literal; the ternary `?:`; `in`; list and map
// literals; floating-point, unsigned (`1u`), hex, raw (r'...'), bytes (b'...') and
// triple-quoted literals; index or field selection on anything but a path (e.g. `(x)['k']`,
// `'abc'[0]`); keys that are expressions (`request.headers[request.host]`); chained
// comparisons (`a == b == c`; add parentheses); macros (all, exists, map, filter), matches(),
// timestamps/durations as values, type(), dyn(), double(), uint(); reading maps or messages
// (`request.headers` alone reads the raw bytes of the serialized map); `node.` other than
// `node.metadata`; a NUL character in a key.
//
// LIMITS: text of at most 1024 characters; nesting (parentheses, call arguments, `!`) at most
// 32 deep. Positions in errors are offsets in the text in UTF-16 code units (bytes, for ASCII).
import { encodePropertyPath, attributeEncoding, Encoding, isAttributeRoot } from "./attributes";
import { Expr, Kind, Node, NoAttributes, Op, StaticType, evalNode, staticTypeName } from "./ast";
import { joinStrings } from "../text/join";

export const MAX_EXPRESSION_LENGTH: i32 = 1024;
export const MAX_NESTING: i32 = 32;

/** Answers the values fixed for the life of a configuration (node metadata), at compile time. */
export abstract class ConstantResolver {
  /** The string value of node metadata `key`, or null when absent. */
  abstract nodeMetadata(key: string): string | null;

  /**
   * Nested node metadata, e.g. ["LABELS", "app"] for `node.metadata['LABELS']['app']`.
   * The default answers single keys through nodeMetadata and nested ones as absent.
   */
  nodeMetadataPath(keys: string[]): string | null {
    return keys.length == 1 ? this.nodeMetadata(unchecked(keys[0])) : null;
  }
}

/** A resolver without node metadata: every key is absent. */
export class NoConstants extends ConstantResolver {
  nodeMetadata(_key: string): string | null {
    return null;
  }
}

/**
 * compileExpression's answer: `expr`, or null with `error` ("<message> at <pos>") and `pos`.
 * `syntax` tells the two kinds of error apart, as Istio's stats filter does (it only parses
 * expressions, and evaluates them untyped): true when the text does not parse at all (Istio
 * drops such a dimension), false when it parses but cannot be evaluated, e.g. an unknown
 * attribute root or function, or operands of the wrong type (Istio reports `unknown`).
 */
export class CompileResult {
  expr: Expr | null = null;
  error: string = "";
  pos: i32 = -1;
  syntax: bool = false;
}

/** An expression that always evaluates to missing (Istio's `unknown` for a dimension). */
export function missingExpression(): Expr {
  const e = new Expr();
  e.root.type = StaticType.Dyn;
  return e;
}

/** Compiles an attribute expression; never traps, whatever the text. */
export function compileExpression(text: string, constants: ConstantResolver): CompileResult {
  const result = new CompileResult();
  if (text.length > MAX_EXPRESSION_LENGTH) {
    result.pos = MAX_EXPRESSION_LENGTH;
    result.error = "expression longer than " + MAX_EXPRESSION_LENGTH.toString() + " characters at " +
      MAX_EXPRESSION_LENGTH.toString();
    return result;
  }
  const p = new Parser(text, constants, false);
  const root = p.parse();
  if (root === null) {
    result.error = p.error;
    result.pos = p.errorPos;
    result.syntax = !p.semanticError;
    if (p.semanticError) {
      // Parsed up to an error of meaning: does the rest of the text parse?
      const syntaxOnly = new Parser(text, constants, true);
      if (syntaxOnly.parse() === null) {
        result.error = syntaxOnly.error;
        result.pos = syntaxOnly.errorPos;
        result.syntax = true;
      }
    }
    return result;
  }
  p.expr.root = root;
  result.expr = p.expr;
  return result;
}

const NO_ATTRIBUTES = new NoAttributes();

// Character codes.
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const BANG = 0x21;
const DQUOTE = 0x22;
const AMP = 0x26;
const SQUOTE = 0x27;
const LPAREN = 0x28;
const RPAREN = 0x29;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const LT = 0x3c;
const EQ = 0x3d;
const GT = 0x3e;
const LBRACKET = 0x5b;
const BACKSLASH = 0x5c;
const RBRACKET = 0x5d;
const PIPE = 0x7c;
const PLUS = 0x2b;

function isDigit(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}

function isNameStart(c: i32): bool {
  const l = c | 0x20;
  return (l >= 0x61 && l <= 0x7a) || c == 0x5f;
}

function isNameChar(c: i32): bool {
  return isNameStart(c) || isDigit(c);
}

function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

function hex4(c: i32): string {
  const digits = "0123456789ABCDEF";
  let s = "";
  for (let shift = 12; shift >= 0; shift -= 4) s += digits.charAt((c >> shift) & 15);
  return s;
}

function typeOfEncoding(e: Encoding): StaticType {
  if (e == Encoding.String) return StaticType.String;
  if (e == Encoding.Bool) return StaticType.Bool;
  return StaticType.Int;
}

function typeOfKind(k: Kind, fallback: StaticType): StaticType {
  switch (k) {
    case Kind.String: return StaticType.String;
    case Kind.Int: return StaticType.Int;
    case Kind.Bool: return StaticType.Bool;
    case Kind.Null: return StaticType.Null;
    default: return fallback;
  }
}

/** `t` may be used where `want` is required (Dyn is checked when evaluated). */
function fits(t: StaticType, want: StaticType): bool {
  return t == want || t == StaticType.Dyn;
}

function constString(value: string, pos: i32): Node {
  const n = new Node(Op.Const, pos);
  n.type = StaticType.String;
  n.setString(String.UTF8.encode(value));
  return n;
}

function constBool(value: bool, pos: i32): Node {
  const n = new Node(Op.Const, pos);
  n.type = StaticType.Bool;
  n.setBool(value);
  return n;
}

class Parser {
  expr: Expr = new Expr();
  error: string = "";
  errorPos: i32 = -1;
  /** The error recorded is one of meaning (the text parses), not of syntax. */
  semanticError: bool = false;
  private s: string;
  private i: i32 = 0;
  private constants: ConstantResolver;
  /** Checks syntax only: errors of meaning become placeholders and parsing goes on. */
  private syntaxOnly: bool;

  constructor(text: string, constants: ConstantResolver, syntaxOnly: bool) {
    this.s = text;
    this.constants = constants;
    this.syntaxOnly = syntaxOnly;
  }

  parse(): Node | null {
    this.skipSpace();
    if (this.i >= this.s.length) return this.fail("empty expression", 0);
    const n = this.parseDefault(0);
    if (n === null) return null;
    this.skipSpace();
    if (this.i < this.s.length) return this.unexpected(this.i);
    return n;
  }

  // ---- errors ----

  private fail(message: string, pos: i32): Node | null {
    if (this.errorPos < 0) {
      this.error = message + " at " + pos.toString();
      this.errorPos = pos;
    }
    return null;
  }

  /**
   * An error of meaning (unknown name, wrong type, wrong arity): an error when compiling, a
   * placeholder of unknown type when only checking syntax.
   */
  private semantic(message: string, pos: i32): Node | null {
    if (this.syntaxOnly) {
      const n = new Node(Op.Const, pos);
      n.type = StaticType.Dyn;
      return n;
    }
    if (this.errorPos < 0) this.semanticError = true;
    return this.fail(message, pos);
  }

  private unexpected(pos: i32): Node | null {
    return this.fail("unexpected " + this.describe(pos), pos);
  }

  /** The token at `pos`, for "unexpected ..." messages. */
  private describe(pos: i32): string {
    const s = this.s;
    if (pos >= s.length) return "end of expression";
    const c = s.charCodeAt(pos);
    if (isNameStart(c) || isDigit(c)) {
      let end = pos + 1;
      while (end < s.length && isNameChar(s.charCodeAt(end))) end++;
      return "'" + s.substring(pos, end) + "'";
    }
    if (c == SQUOTE || c == DQUOTE) return "string literal";
    if (pos + 1 < s.length) {
      const two = s.substring(pos, pos + 2);
      if (two == "==" || two == "!=" || two == "<=" || two == ">=" || two == "&&" || two == "||") {
        return "'" + two + "'";
      }
    }
    if (c < 0x20 || c >= 0x7f) return "character U+" + hex4(c);
    return "'" + String.fromCharCode(c) + "'";
  }

  private nestingError(pos: i32): Node | null {
    return this.fail("nesting deeper than " + MAX_NESTING.toString(), pos);
  }

  // ---- characters ----

  private skipSpace(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c != SPACE && c != TAB && c != LF && c != CR) break;
      this.i++;
    }
  }

  /** The character at i + k, or -1 past the end. */
  private peek(k: i32 = 0): i32 {
    const j = this.i + k;
    return j < this.s.length ? this.s.charCodeAt(j) : -1;
  }

  /** A name starting at i (which must be a name start); advances past it. */
  private name(): string {
    const s = this.s;
    const start = this.i;
    while (this.i < s.length && isNameChar(s.charCodeAt(this.i))) this.i++;
    return s.substring(start, this.i);
  }

  // ---- constant folding ----

  /** Folds `n` when all its operands are constants; returns the node to use. */
  private finish(n: Node): Node {
    if (n.op == Op.Const || n.op == Op.Attr) return n;
    const kids = n.children;
    for (let k = 0; k < kids.length; k++) {
      if (unchecked(kids[k]).op != Op.Const) return n;
    }
    evalNode(n, this.expr, NO_ATTRIBUTES);
    n.op = Op.Const;
    n.children = [];
    n.type = typeOfKind(n.kind, n.type);
    return n;
  }

  // ---- grammar ----

  /** expr = or { "|" or } */
  private parseDefault(depth: i32): Node | null {
    const first = this.parseOr(depth);
    if (first === null) return null;
    this.skipSpace();
    if (!(this.peek() == PIPE && this.peek(1) != PIPE)) return first;
    const operands: Node[] = [first];
    while (true) {
      this.skipSpace();
      if (!(this.peek() == PIPE && this.peek(1) != PIPE)) break;
      this.i++;
      const next = this.parseOr(depth);
      if (next === null) return null;
      operands.push(next);
    }
    let type = first.type;
    for (let k = 1; k < operands.length; k++) {
      if (unchecked(operands[k]).type != type) type = StaticType.Dyn;
    }
    // Constant operands: a missing one is skipped; a present one ends the chain.
    const kept: Node[] = [];
    for (let k = 0; k < operands.length; k++) {
      const o = unchecked(operands[k]);
      if (o.op == Op.Const && o.kind == Kind.Missing) continue;
      kept.push(o);
      if (o.op == Op.Const) break;
    }
    if (kept.length == 0) {
      const missing = new Node(Op.Const, first.pos);
      missing.type = type;
      return missing;
    }
    if (unchecked(kept[0]).op == Op.Const) return unchecked(kept[0]);
    const n = new Node(Op.Default, first.pos);
    n.type = type;
    n.children = kept;
    return n;
  }

  /** or = and { "||" and }  and  and = rel { "&&" rel } */
  private parseLogical(depth: i32, or: bool): Node | null {
    const first = or ? this.parseLogical(depth, false) : this.parseRel(depth);
    if (first === null) return null;
    const c = or ? PIPE : AMP;
    this.skipSpace();
    if (!(this.peek() == c && this.peek(1) == c)) return first;
    const opName = or ? "'||'" : "'&&'";
    if (!fits(first.type, StaticType.Bool) && !this.syntaxOnly) {
      return this.semantic(opName + " needs bool operands, got " + staticTypeName(first.type), first.pos);
    }
    const operands: Node[] = [first];
    while (true) {
      this.skipSpace();
      if (!(this.peek() == c && this.peek(1) == c)) break;
      this.i += 2;
      const next = or ? this.parseLogical(depth, false) : this.parseRel(depth);
      if (next === null) return null;
      if (!fits(next.type, StaticType.Bool) && !this.syntaxOnly) {
        return this.semantic(opName + " needs bool operands, got " + staticTypeName(next.type), next.pos);
      }
      operands.push(next);
    }
    // Constant operands: the absorbing value (true for ||, false for &&) decides; the other
    // one is dropped.
    const kept: Node[] = [];
    for (let k = 0; k < operands.length; k++) {
      const o = unchecked(operands[k]);
      if (o.op == Op.Const && o.kind == Kind.Bool) {
        if ((o.num != 0) == or) return constBool(or, first.pos);
        continue;
      }
      kept.push(o);
    }
    if (kept.length == 0) return constBool(!or, first.pos);
    if (kept.length == 1 && unchecked(kept[0]).type == StaticType.Bool) return unchecked(kept[0]);
    const n = new Node(or ? Op.Or : Op.And, first.pos);
    n.type = StaticType.Bool;
    n.children = kept;
    return this.finish(n);
  }

  private parseOr(depth: i32): Node | null {
    return this.parseLogical(depth, true);
  }

  /** The comparison operator at i (not consumed), or -1 when there is none. */
  private relOp(): i32 {
    const c = this.peek();
    const d = this.peek(1);
    if (c == EQ && d == EQ) return Op.Eq;
    if (c == BANG && d == EQ) return Op.Ne;
    if (c == LT) return d == EQ ? Op.Le : Op.Lt;
    if (c == GT) return d == EQ ? Op.Ge : Op.Gt;
    return -1;
  }

  /** rel = sum [ relop sum ] */
  private parseRel(depth: i32): Node | null {
    const left = this.parseSum(depth);
    if (left === null) return null;
    this.skipSpace();
    if (this.peek() == EQ && this.peek(1) != EQ) return this.fail("unexpected '=' (use '==')", this.i);
    const op = this.relOp();
    if (op < 0) return left;
    const opPos = this.i;
    this.i += op == Op.Lt || op == Op.Gt ? 1 : 2;
    const right = this.parseSum(depth);
    if (right === null) return null;
    const lt = left.type;
    const rt = right.type;
    const known = lt != StaticType.Dyn && rt != StaticType.Dyn;
    if (op == Op.Eq || op == Op.Ne) {
      if (known && lt != rt && lt != StaticType.Null && rt != StaticType.Null) {
        return this.semantic("cannot compare " + staticTypeName(lt) + " with " + staticTypeName(rt), opPos);
      }
    } else {
      if (lt == StaticType.Null || rt == StaticType.Null) return this.semantic("null has no order", opPos);
      if (known && lt != rt) {
        return this.semantic("cannot compare " + staticTypeName(lt) + " with " + staticTypeName(rt), opPos);
      }
    }
    this.skipSpace();
    if (this.relOp() >= 0) return this.fail("comparisons do not chain (add parentheses)", this.i);
    if (this.peek() == EQ) return this.fail("unexpected '=' (use '==')", this.i);
    const n = new Node(<Op>op, left.pos);
    n.type = StaticType.Bool;
    n.children = [left, right];
    return this.finish(n);
  }

  /**
   * sum = unary { "+" unary }: string concatenation or int addition (CEL's `+`). Operands of
   * known, different types are an error of meaning; a Dyn operand is checked when evaluated.
   */
  private parseSum(depth: i32): Node | null {
    let left = this.parseUnary(depth);
    while (left !== null) {
      this.skipSpace();
      if (this.peek() != PLUS) break;
      const opPos = this.i;
      this.i++;
      const right = this.parseUnary(depth);
      if (right === null) return null;
      const lt = left.type;
      const rt = right.type;
      let type = StaticType.Dyn;
      if (lt != StaticType.Dyn && rt != StaticType.Dyn) {
        if (lt != rt || (lt != StaticType.String && lt != StaticType.Int)) {
          return this.semantic("'+' needs two strings or two ints, got " + staticTypeName(lt) + " and " + staticTypeName(rt), opPos);
        }
        type = lt;
      } else if (lt == StaticType.Null || lt == StaticType.Bool || rt == StaticType.Null || rt == StaticType.Bool) {
        return this.semantic("'+' needs strings or ints", opPos);
      }
      const n = new Node(Op.Add, left.pos);
      n.type = type;
      n.children = [left, right];
      left = this.finish(n);
    }
    return left;
  }

  /** unary = "!" unary | postfix */
  private parseUnary(depth: i32): Node | null {
    this.skipSpace();
    if (this.peek() == BANG && this.peek(1) != EQ) {
      const pos = this.i;
      if (depth + 1 > MAX_NESTING) return this.nestingError(pos);
      this.i++;
      const operand = this.parseUnary(depth + 1);
      if (operand === null) return null;
      if (!fits(operand.type, StaticType.Bool)) {
        return this.semantic("'!' needs a bool operand, got " + staticTypeName(operand.type), operand.pos);
      }
      const n = new Node(Op.Not, pos);
      n.type = StaticType.Bool;
      n.children = [operand];
      return this.finish(n);
    }
    return this.parsePostfix(depth);
  }

  /** postfix = primary { "." method "(" args ")" } */
  private parsePostfix(depth: i32): Node | null {
    let n = this.parsePrimary(depth);
    while (n !== null) {
      this.skipSpace();
      const c = this.peek();
      if (c == LBRACKET) return this.fail("indexing is only supported on attribute paths", this.i);
      if (c != DOT) break;
      const dotPos = this.i;
      this.i++;
      this.skipSpace();
      if (!isNameStart(this.peek())) return this.unexpected(this.i);
      const namePos = this.i;
      const method = this.name();
      this.skipSpace();
      if (this.peek() != LPAREN) {
        n = this.semantic("field selection is only supported on attribute paths", dotPos);
        continue;
      }
      n = this.method(n, method, namePos, depth);
    }
    return n;
  }

  private method(receiver: Node, method: string, namePos: i32, depth: i32): Node | null {
    let op: Op;
    let arity = 1;
    if (method == "startsWith") op = Op.StartsWith;
    else if (method == "endsWith") op = Op.EndsWith;
    else if (method == "contains") op = Op.Contains;
    else if (method == "size") {
      op = Op.Size;
      arity = 0;
    } else {
      op = Op.Const;
      arity = -1;
    }
    const args = this.arguments(depth);
    if (args === null) return null;
    if (arity < 0) return this.semantic("unknown method '" + method + "'", namePos);
    if (args.length != arity) return this.arityError(method, arity, namePos);
    if (!fits(receiver.type, StaticType.String)) {
      return this.semantic(method + "() needs a string receiver, got " + staticTypeName(receiver.type), receiver.pos);
    }
    const n = new Node(op, receiver.pos);
    if (op == Op.Size) {
      n.type = StaticType.Int;
      n.children = [receiver];
    } else {
      const arg = unchecked(args[0]);
      if (!fits(arg.type, StaticType.String)) {
        return this.semantic(method + "() needs a string argument, got " + staticTypeName(arg.type), arg.pos);
      }
      n.type = StaticType.Bool;
      n.children = [receiver, arg];
    }
    return this.finish(n);
  }

  private arityError(fn: string, arity: i32, pos: i32): Node | null {
    return this.semantic(fn + "() takes " + arity.toString() + (arity == 1 ? " argument" : " arguments"), pos);
  }

  /** "(" [ expr { "," expr } ] ")" starting at i; null on error. */
  private arguments(depth: i32): Node[] | null {
    const open = this.i;
    if (depth + 1 > MAX_NESTING) {
      this.nestingError(open);
      return null;
    }
    this.i++; // (
    const args: Node[] = [];
    this.skipSpace();
    if (this.peek() == RPAREN) {
      this.i++;
      return args;
    }
    while (true) {
      const a = this.parseDefault(depth + 1);
      if (a === null) return null;
      args.push(a);
      this.skipSpace();
      const c = this.peek();
      if (c == RPAREN) {
        this.i++;
        return args;
      }
      if (c != COMMA) {
        this.fail(c < 0 ? "expected ')'" : "expected ',' or ')'", this.i);
        return null;
      }
      this.i++;
    }
  }

  private parsePrimary(depth: i32): Node | null {
    this.skipSpace();
    const start = this.i;
    const c = this.peek();
    if (c < 0) return this.unexpected(start);
    if (c == LPAREN) {
      if (depth + 1 > MAX_NESTING) return this.nestingError(start);
      this.i++;
      const inner = this.parseDefault(depth + 1);
      if (inner === null) return null;
      this.skipSpace();
      if (this.peek() != RPAREN) return this.fail("expected ')'", this.i);
      this.i++;
      return inner;
    }
    if (c == SQUOTE || c == DQUOTE) {
      const value = this.stringLiteral();
      if (value === null) return null;
      return constString(value, start);
    }
    if (isDigit(c) || (c == MINUS && isDigit(this.peek(1)))) return this.intLiteral();
    if (!isNameStart(c)) return this.unexpected(start);
    const word = this.name();
    const next = this.peek();
    if (next == SQUOTE || next == DQUOTE) {
      if (word == "r" || word == "R" || word == "b" || word == "B" || word == "rb" || word == "br") {
        return this.fail("raw and bytes string literals are not supported", start);
      }
    }
    if (word == "true" || word == "false") return constBool(word == "true", start);
    if (word == "null") {
      const n = new Node(Op.Const, start);
      n.type = StaticType.Null;
      n.setNull();
      return n;
    }
    this.skipSpace();
    if (this.peek() == LPAREN) return this.call(word, start, depth);
    this.i = start + word.length;
    return this.path(word, start);
  }

  /** string(x), int(x), has(path), size(x), with i at "(". */
  private call(fn: string, pos: i32, depth: i32): Node | null {
    let op: Op;
    if (fn == "string") op = Op.ToString;
    else if (fn == "int") op = Op.ToInt;
    else if (fn == "has") op = Op.Has;
    else if (fn == "size") op = Op.Size;
    else op = Op.Const;
    const args = this.arguments(depth);
    if (args === null) return null;
    if (op == Op.Const) return this.semantic("unknown function '" + fn + "'", pos);
    if (args.length != 1) return this.arityError(fn, 1, pos);
    const arg = unchecked(args[0]);
    const t = arg.type;
    const n = new Node(op, pos);
    n.children = [arg];
    if (op == Op.ToString) {
      if (t == StaticType.Null) return this.semantic("string() cannot convert null", arg.pos);
      n.type = StaticType.String;
    } else if (op == Op.ToInt) {
      if (t == StaticType.Null || t == StaticType.Bool) {
        return this.semantic("int() cannot convert " + staticTypeName(t), arg.pos);
      }
      n.type = StaticType.Int;
    } else if (op == Op.Has) {
      if (!arg.attribute) return this.semantic("has() needs an attribute path", arg.pos);
      n.type = StaticType.Bool;
    } else {
      if (!fits(t, StaticType.String)) return this.semantic("size() needs a string, got " + staticTypeName(t), arg.pos);
      n.type = StaticType.Int;
    }
    return this.finish(n);
  }

  /** path = root { "." name | "[" key "]" }, with i just past the root name. */
  private path(root: string, start: i32): Node | null {
    // An unknown root is an error of meaning: the rest of the path is still parsed.
    const knownRoot = root == "node" || isAttributeRoot(root);
    const segments: string[] = [root];
    while (true) {
      const save = this.i;
      this.skipSpace();
      const c = this.peek();
      if (c == DOT) {
        this.i++;
        this.skipSpace();
        if (!isNameStart(this.peek())) {
          if (this.peek() < 0) return this.fail("expected a name after '.'", this.i);
          return this.unexpected(this.i);
        }
        const seg = this.name();
        const after = this.i;
        this.skipSpace();
        if (this.peek() == LPAREN) {
          // A method call on the path so far: leave ".name(" to parsePostfix.
          this.i = save;
          break;
        }
        this.i = after;
        segments.push(seg);
      } else if (c == LBRACKET) {
        this.i++;
        this.skipSpace();
        const keyPos = this.i;
        const k = this.peek();
        let key: string;
        if (k == SQUOTE || k == DQUOTE) {
          const value = this.stringLiteral();
          if (value === null) return null;
          if (value.indexOf("\0") >= 0) return this.fail("NUL character in key", keyPos);
          key = value;
        } else if (isDigit(k)) {
          const n = this.intLiteral();
          if (n === null) return null;
          key = n.num.toString();
        } else if (k < 0) {
          return this.fail("expected a key", keyPos);
        } else {
          return this.fail("expected a string or integer key", keyPos);
        }
        this.skipSpace();
        if (this.peek() != RBRACKET) return this.fail("expected ']'", this.i);
        this.i++;
        segments.push(key);
      } else {
        this.i = save;
        break;
      }
    }
    if (!knownRoot) return this.semantic("unknown attribute root '" + root + "'", start);
    // Node metadata: a compile-time constant.
    let metadataKeys = -1;
    if (root == "node") {
      if (segments.length < 2 || unchecked(segments[1]) != "metadata") {
        return this.semantic("only node.metadata is supported", start);
      }
      metadataKeys = 2;
    } else if (root == "xds" && segments.length >= 3 && unchecked(segments[1]) == "node" &&
      unchecked(segments[2]) == "metadata") {
      metadataKeys = 3;
    }
    if (metadataKeys >= 0) {
      if (segments.length == metadataKeys) return this.semantic("node metadata needs a key, e.g. node.metadata['NAME']", start);
      const value = this.constants.nodeMetadataPath(segments.slice(metadataKeys));
      const n = value === null ? new Node(Op.Const, start) : constString(value, start);
      n.type = StaticType.String;
      n.attribute = true;
      return n;
    }
    const n = new Node(Op.Attr, start);
    n.slot = this.expr.slotFor(joinStrings(segments, "\0"), encodePropertyPath(segments), joinStrings(segments, "."));
    n.encoding = attributeEncoding(segments);
    n.type = typeOfEncoding(n.encoding);
    n.attribute = true;
    return n;
  }

  /** [ "-" ] ( "0" | [1-9][0-9]* ) within i64, at i. */
  private intLiteral(): Node | null {
    const s = this.s;
    const start = this.i;
    let neg = false;
    if (this.peek() == MINUS) {
      neg = true;
      this.i++;
    }
    const digits = this.i;
    // Accumulate negatively so that i64.MIN_VALUE fits.
    let acc: i64 = 0;
    let overflow = false;
    while (this.i < s.length && isDigit(s.charCodeAt(this.i))) {
      const d = <i64>(s.charCodeAt(this.i) - 0x30);
      if (acc < (i64.MIN_VALUE + d) / 10) overflow = true;
      else acc = acc * 10 - d;
      this.i++;
    }
    if (s.charCodeAt(digits) == 0x30 && this.i - digits > 1) return this.fail("leading zero in integer", start);
    const c = this.peek();
    if (c == DOT && isDigit(this.peek(1))) return this.fail("floating-point numbers are not supported", start);
    if (isNameChar(c)) return this.fail("malformed number", start);
    if (overflow || (!neg && acc == i64.MIN_VALUE)) return this.fail("integer out of range", start);
    const n = new Node(Op.Const, start);
    n.type = StaticType.Int;
    n.setInt(neg ? acc : -acc);
    return n;
  }

  /** A quoted string at i; null (error set) when malformed. */
  private stringLiteral(): string | null {
    const s = this.s;
    const start = this.i;
    const q = s.charCodeAt(start);
    if (this.peek(1) == q && this.peek(2) == q) {
      this.fail("triple-quoted strings are not supported", start);
      return null;
    }
    this.i++;
    let out = "";
    let chunk = this.i;
    while (true) {
      if (this.i >= s.length) {
        this.fail("unterminated string", start);
        return null;
      }
      const c = s.charCodeAt(this.i);
      if (c == q) {
        out += s.substring(chunk, this.i);
        this.i++;
        return out;
      }
      if (c == LF || c == CR) {
        this.fail("newline in string", this.i);
        return null;
      }
      if (c != BACKSLASH) {
        this.i++;
        continue;
      }
      out += s.substring(chunk, this.i);
      const escPos = this.i;
      this.i++;
      if (this.i >= s.length) {
        this.fail("unterminated string", start);
        return null;
      }
      const e = s.charCodeAt(this.i++);
      let cp: i32 = -1;
      if (e == BACKSLASH || e == SQUOTE || e == DQUOTE || e == 0x60 || e == 0x3f) cp = e;
      else if (e == 0x61) cp = 0x07; // a
      else if (e == 0x62) cp = 0x08; // b
      else if (e == 0x66) cp = 0x0c; // f
      else if (e == 0x6e) cp = 0x0a; // n
      else if (e == 0x72) cp = 0x0d; // r
      else if (e == 0x74) cp = 0x09; // t
      else if (e == 0x76) cp = 0x0b; // v
      else if (e == 0x78 || e == 0x75 || e == 0x55) {
        const count = e == 0x78 ? 2 : e == 0x75 ? 4 : 8;
        cp = 0;
        for (let k = 0; k < count; k++) {
          const h = this.i < s.length ? hexValue(s.charCodeAt(this.i)) : -1;
          if (h < 0) {
            this.fail("malformed \\" + String.fromCharCode(e) + " escape", escPos);
            return null;
          }
          // Eight hex digits can exceed i32: stop growing past the Unicode range.
          if (cp <= 0x10ffff) cp = (cp << 4) | h;
          this.i++;
        }
      } else if (e >= 0x30 && e <= 0x33) {
        cp = e - 0x30;
        for (let k = 0; k < 2; k++) {
          const o = this.i < s.length ? s.charCodeAt(this.i) : -1;
          if (o < 0x30 || o > 0x37) {
            this.fail("malformed octal escape", escPos);
            return null;
          }
          cp = (cp << 3) | (o - 0x30);
          this.i++;
        }
      } else {
        this.fail("unknown escape '\\" + String.fromCharCode(e) + "'", escPos);
        return null;
      }
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        this.fail("invalid code point in escape", escPos);
        return null;
      }
      out += String.fromCodePoint(cp);
      chunk = this.i;
    }
  }
}
