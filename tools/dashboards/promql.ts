// A small PromQL parser for the subset Istio's dashboards use: selectors with matchers, range
// selectors, function calls, aggregations with `by`/`without` before or after their
// arguments, binary operators with `on`/`ignoring`/`group_*` modifiers, number and string
// literals. It exists so tools can see which metrics and labels a dashboard query touches, and
// so the test can compute what a query should return from the traffic it drove
// (tools/dashboards/model.ts). Prometheus itself stays the judge of whether a query parses.

export type Matcher = { label: string; op: "=" | "!=" | "=~" | "!~"; value: string };

export type Node =
  | { type: "number"; value: number }
  | { type: "string"; value: string }
  | { type: "selector"; name: string; matchers: Matcher[]; range?: string; offset?: string }
  | { type: "call"; fn: string; args: Node[] }
  | { type: "aggregate"; op: string; grouping?: { without: boolean; labels: string[] }; param?: Node; expr: Node }
  | {
      type: "binary";
      op: string;
      lhs: Node;
      rhs: Node;
      bool?: boolean;
      matching?: { on: boolean; labels: string[] };
      group?: { side: "left" | "right"; labels: string[] };
    }
  | { type: "paren"; expr: Node }
  | { type: "unary"; op: "-" | "+"; expr: Node }
  | { type: "subquery"; expr: Node; range: string; step?: string };

const AGGREGATIONS = new Set([
  "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
]);
const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"]);
// Binary operator precedence, lowest first (Prometheus: or < and/unless < comparison < +- < */% < ^).
const PRECEDENCE: string[][] = [["or"], ["and", "unless"], ["==", "!=", "<=", "<", ">=", ">"], ["+", "-"], ["*", "/", "%", "atan2"], ["^"]];

type Token = { kind: "ident" | "number" | "string" | "punct" | "duration"; text: string; pos: number };

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let bracketDepth = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "#") {
      while (i < src.length && src[i] !== "\n") i++;
      continue;
    }
    if (bracketDepth > 0 && /[0-9]/.test(c)) {
      // durations inside [..] and after offset: 5m, 1h30m, 4s, 250ms
      const m = /^[0-9]+(ms|[smhdwy])([0-9]+(ms|[smhdwy]))*/.exec(src.slice(i));
      if (m) {
        tokens.push({ kind: "duration", text: m[0], pos: i });
        i += m[0].length;
        continue;
      }
    }
    if (/[0-9.]/.test(c) && /^(\d+\.?\d*|\.\d+)/.test(src.slice(i))) {
      const dur = /^[0-9]+(ms|[smhdwy])([0-9]+(ms|[smhdwy]))*(?![a-zA-Z0-9_])/.exec(src.slice(i));
      if (dur && tokens.length > 0 && tokens[tokens.length - 1].text === "offset") {
        tokens.push({ kind: "duration", text: dur[0], pos: i });
        i += dur[0].length;
        continue;
      }
      const m = /^(0x[0-9a-fA-F]+|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)/.exec(src.slice(i))!;
      tokens.push({ kind: "number", text: m[0], pos: i });
      i += m[0].length;
      continue;
    }
    if (/[a-zA-Z_:]/.test(c)) {
      const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(src.slice(i))!;
      tokens.push({ kind: "ident", text: m[0], pos: i });
      i += m[0].length;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      let value = "";
      while (j < src.length && src[j] !== c) {
        if (src[j] === "\\" && c !== "`") {
          const n = src[j + 1];
          value += n === "n" ? "\n" : n === "t" ? "\t" : n;
          j += 2;
        } else {
          value += src[j++];
        }
      }
      if (j >= src.length) throw new Error(`unterminated string at ${i}`);
      tokens.push({ kind: "string", text: value, pos: i });
      i = j + 1;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (["=~", "!~", "!=", "==", "<=", ">="].includes(two)) {
      tokens.push({ kind: "punct", text: two, pos: i });
      i += 2;
      continue;
    }
    if ("(){}[],=<>+-*/%^:".includes(c)) {
      if (c === "[") bracketDepth++;
      if (c === "]") bracketDepth--;
      tokens.push({ kind: "punct", text: c, pos: i });
      i++;
      continue;
    }
    throw new Error(`unexpected character '${c}' at ${i}`);
  }
  return tokens;
}

class Parser {
  private i = 0;
  constructor(private tokens: Token[], private src: string) {}

  private peek(offset = 0): Token | undefined {
    return this.tokens[this.i + offset];
  }
  private next(): Token {
    const t = this.tokens[this.i++];
    if (!t) throw new Error(`unexpected end of query: ${this.src}`);
    return t;
  }
  private is(text: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t !== undefined && (t.kind === "punct" || t.kind === "ident") && t.text === text;
  }
  private expect(text: string): Token {
    const t = this.next();
    if (t.text !== text) throw new Error(`expected '${text}' at ${t.pos}, got '${t.text}' in: ${this.src}`);
    return t;
  }

  parse(): Node {
    const node = this.expr(0);
    if (this.i < this.tokens.length) throw new Error(`unexpected '${this.peek()!.text}' at ${this.peek()!.pos} in: ${this.src}`);
    return node;
  }

  private expr(level: number): Node {
    if (level >= PRECEDENCE.length) return this.unary();
    let lhs = this.expr(level + 1);
    while (this.peek() && PRECEDENCE[level].includes(this.peek()!.text) && this.peek()!.kind !== "string") {
      const op = this.next().text;
      const node: Node = { type: "binary", op, lhs, rhs: lhs };
      if (this.is("bool")) {
        this.next();
        node.bool = true;
      }
      if (this.is("on") || this.is("ignoring")) {
        const on = this.next().text === "on";
        node.matching = { on, labels: this.labelList() };
      }
      if (this.is("group_left") || this.is("group_right")) {
        const side = this.next().text === "group_left" ? "left" : "right";
        node.group = { side, labels: this.is("(") ? this.labelList() : [] };
      }
      // ^ is right-associative; the rest are left-associative.
      node.rhs = op === "^" ? this.expr(level) : this.expr(level + 1);
      lhs = node;
    }
    return lhs;
  }

  private unary(): Node {
    if (this.is("-") || this.is("+")) {
      const op = this.next().text as "-" | "+";
      return { type: "unary", op, expr: this.unary() };
    }
    return this.postfix(this.primary());
  }

  private postfix(node: Node): Node {
    for (;;) {
      if (this.is("[")) {
        this.next();
        const range = this.next();
        if (range.kind !== "duration") throw new Error(`expected a duration at ${range.pos} in: ${this.src}`);
        if (this.is(":")) {
          this.next();
          const step = this.peek()?.kind === "duration" ? this.next().text : undefined;
          this.expect("]");
          node = { type: "subquery", expr: node, range: range.text, step };
          continue;
        }
        this.expect("]");
        if (node.type !== "selector") throw new Error(`range on a non-selector at ${range.pos} in: ${this.src}`);
        node = { ...node, range: range.text };
        continue;
      }
      if (this.is("offset")) {
        this.next();
        const d = this.next();
        if (node.type === "selector") node = { ...node, offset: d.text };
        continue;
      }
      return node;
    }
  }

  private primary(): Node {
    const t = this.next();
    if (t.kind === "number") return { type: "number", value: Number(t.text) };
    if (t.kind === "string") return { type: "string", value: t.text };
    if (t.text === "(") {
      const expr = this.expr(0);
      this.expect(")");
      return { type: "paren", expr };
    }
    if (t.text === "{") {
      return { type: "selector", name: "", matchers: this.matchers() };
    }
    if (t.kind === "ident") {
      if (AGGREGATIONS.has(t.text) && (this.is("(") || this.is("by") || this.is("without"))) return this.aggregate(t.text);
      if (this.is("(") && !KEYWORDS.has(t.text)) {
        this.next();
        const args: Node[] = [];
        while (!this.is(")")) {
          args.push(this.expr(0));
          if (!this.is(")")) this.expect(",");
        }
        this.expect(")");
        return { type: "call", fn: t.text, args };
      }
      if (t.text === "inf" || t.text === "Inf") return { type: "number", value: Infinity };
      if (t.text === "nan" || t.text === "NaN") return { type: "number", value: NaN };
      const matchers = this.is("{") ? (this.next(), this.matchers()) : [];
      return { type: "selector", name: t.text, matchers };
    }
    throw new Error(`unexpected '${t.text}' at ${t.pos} in: ${this.src}`);
  }

  private matchers(): Matcher[] {
    const out: Matcher[] = [];
    while (!this.is("}")) {
      const label = this.next();
      const op = this.next().text;
      if (!["=", "!=", "=~", "!~"].includes(op)) throw new Error(`bad matcher operator '${op}' at ${label.pos} in: ${this.src}`);
      const value = this.next();
      if (value.kind !== "string") throw new Error(`expected a string at ${value.pos} in: ${this.src}`);
      out.push({ label: label.text, op: op as Matcher["op"], value: value.text });
      if (!this.is("}")) this.expect(",");
    }
    this.expect("}");
    return out;
  }

  private labelList(): string[] {
    this.expect("(");
    const labels: string[] = [];
    while (!this.is(")")) {
      labels.push(this.next().text);
      if (!this.is(")")) this.expect(",");
    }
    this.expect(")");
    return labels;
  }

  private aggregate(op: string): Node {
    let grouping: { without: boolean; labels: string[] } | undefined;
    if (this.is("by") || this.is("without")) {
      const without = this.next().text === "without";
      grouping = { without, labels: this.labelList() };
    }
    this.expect("(");
    const first = this.expr(0);
    let param: Node | undefined;
    let expr = first;
    if (this.is(",")) {
      this.next();
      param = first;
      expr = this.expr(0);
    }
    this.expect(")");
    if (!grouping && (this.is("by") || this.is("without"))) {
      const without = this.next().text === "without";
      grouping = { without, labels: this.labelList() };
    }
    return { type: "aggregate", op, grouping, param, expr };
  }
}

export function parsePromQL(src: string): Node {
  return new Parser(tokenize(src), src).parse();
}

/** Calls `visit` on every node, depth first. */
export function walk(node: Node, visit: (n: Node) => void): void {
  visit(node);
  switch (node.type) {
    case "call":
      node.args.forEach((a) => walk(a, visit));
      break;
    case "aggregate":
      if (node.param) walk(node.param, visit);
      walk(node.expr, visit);
      break;
    case "binary":
      walk(node.lhs, visit);
      walk(node.rhs, visit);
      break;
    case "paren":
    case "unary":
    case "subquery":
      walk(node.expr, visit);
      break;
  }
}

/** Every metric name a query selects. */
export function metricNames(node: Node): string[] {
  const names = new Set<string>();
  walk(node, (n) => {
    if (n.type === "selector") {
      if (n.name) names.add(n.name);
      for (const m of n.matchers) if (m.label === "__name__" && m.op === "=") names.add(m.value);
    }
  });
  return [...names].sort();
}

/** Every function a query calls. */
export function functionNames(node: Node): string[] {
  const names = new Set<string>();
  walk(node, (n) => {
    if (n.type === "call") names.add(n.fn);
  });
  return [...names].sort();
}

/** Duration text (5m, 1h30m, 250ms) in seconds. */
export function durationSeconds(text: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
  let total = 0;
  for (const m of text.matchAll(/([0-9]+)(ms|[smhdwy])/g)) total += Number(m[1]) * units[m[2]];
  return total;
}
