// PromQL as the dashboard tools see it: Prometheus's own grammar (@prometheus-io/lezer-promql)
// parses a query, and this adapter turns lezer's syntax tree into a small AST, so tools can see
// which metrics and labels a dashboard query touches and the test can compute what a query
// should return from the traffic it drove (tests/harness/dashboards/model.ts). Prometheus itself stays
// the judge of whether a query runs; a query lezer cannot parse is refused here.
import { parser } from "@prometheus-io/lezer-promql";

type SyntaxNode = ReturnType<typeof parser.parse>["topNode"];

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

export function parsePromQL(src: string): Node {
  const tree = parser.parse(src);
  tree.iterate({
    enter: (n) => {
      if (n.type.isError) throw new Error(`PromQL syntax error at ${n.from} in: ${src}`);
    },
  });
  const top = tree.topNode.firstChild;
  if (!top) throw new Error(`empty PromQL query: ${JSON.stringify(src)}`);
  return new TreeReader(src).expr(top);
}

/** Reads lezer's PromQL tree (node names from the grammar, promql.grammar) into a Node. */
class TreeReader {
  constructor(private src: string) {}

  private text(n: SyntaxNode): string {
    return this.src.slice(n.from, n.to);
  }

  private fail(n: SyntaxNode, what: string): never {
    throw new Error(`${what} at ${n.from} in: ${this.src}`);
  }

  /** The node's children that are expressions (the grammar's `Expr` group). */
  private exprs(n: SyntaxNode): SyntaxNode[] {
    return n.getChildren("Expr");
  }

  private only(n: SyntaxNode): SyntaxNode {
    const [e] = this.exprs(n);
    return e ?? this.fail(n, `${n.name} without an expression`);
  }

  expr(n: SyntaxNode): Node {
    switch (n.name) {
      case "NumberDurationLiteral":
        return { type: "number", value: this.number(n) };
      case "StringLiteral":
        return { type: "string", value: unquote(this.text(n)) };
      case "ParenExpr":
        return { type: "paren", expr: this.expr(this.only(n)) };
      case "UnaryExpr": {
        const op = this.text(n.getChild("UnaryOp")!) as "-" | "+";
        return { type: "unary", op, expr: this.expr(this.only(n)) };
      }
      case "VectorSelector":
        return this.selector(n);
      case "MatrixSelector": {
        const inner = this.expr(this.only(n));
        if (inner.type !== "selector") this.fail(n, "range on a non-selector");
        return { ...inner, range: this.text(n.getChild("DurationExpr")!) };
      }
      case "SubqueryExpr": {
        const [range, step] = n.getChildren("DurationExpr").map((d) => this.text(d));
        return { type: "subquery", expr: this.expr(this.only(n)), range, step };
      }
      case "OffsetExpr": {
        const inner = this.expr(this.only(n));
        // An offset only changes which samples a selector reads; elsewhere it is kept out of the AST.
        return inner.type === "selector" ? { ...inner, offset: this.text(n.getChild("OffsetDurationExpr")!) } : inner;
      }
      case "FunctionCall":
        return {
          type: "call",
          fn: this.text(n.getChild("FunctionIdentifier")!),
          args: this.exprs(n.getChild("FunctionCallBody")!).map((a) => this.expr(a)),
        };
      case "AggregateExpr":
        return this.aggregate(n);
      case "BinaryExpr":
        return this.binary(n);
      default:
        return this.fail(n, `unsupported PromQL ${n.name}`);
    }
  }

  private number(n: SyntaxNode): number {
    const text = this.text(n).replace(/_/g, "");
    const sign = text.startsWith("-") ? -1 : 1;
    const body = text.replace(/^[-+]/, "");
    if (/^inf$/i.test(body)) return sign * Infinity;
    if (/^nan$/i.test(body)) return NaN;
    // A duration used as a number is its length in seconds.
    if (/[a-z]$/.test(body) && !/^0x/i.test(body)) return sign * durationSeconds(body);
    return sign * Number(body);
  }

  private selector(n: SyntaxNode): Node {
    const name = n.getChild("Identifier");
    const matchers: Matcher[] = [];
    const list = n.getChild("LabelMatchers");
    for (let m = list?.firstChild; m; m = m.nextSibling) {
      if (m.name === "QuotedLabelName") {
        // {"metric.name"}: a quoted metric name among the matchers.
        matchers.push({ label: "__name__", op: "=", value: unquote(this.text(m)) });
        continue;
      }
      const label = m.name === "QuotedLabelMatcher" ? unquote(this.text(m.getChild("QuotedLabelName")!)) : this.text(m.getChild("LabelName")!);
      const op = this.text(m.getChild("MatchOp")!) as Matcher["op"];
      matchers.push({ label, op, value: unquote(this.text(m.getChild("StringLiteral")!)) });
    }
    return { type: "selector", name: name ? this.text(name) : "", matchers };
  }

  private labels(grouping: SyntaxNode): string[] {
    const out: string[] = [];
    for (let l = grouping.firstChild; l; l = l.nextSibling) out.push(l.name === "QuotedLabelName" ? unquote(this.text(l)) : this.text(l));
    return out;
  }

  private aggregate(n: SyntaxNode): Node {
    // PromQL keywords are case-insensitive (SUM, By).
    const op = this.text(n.getChild("AggregateOp")!).toLowerCase();
    const modifier = n.getChild("AggregateModifier");
    const grouping = modifier
      ? { without: modifier.getChild("Without") !== null, labels: this.labels(modifier.getChild("GroupingLabels")!) }
      : undefined;
    const args = this.exprs(n.getChild("FunctionCallBody")!).map((a) => this.expr(a));
    if (args.length === 1) return { type: "aggregate", op, grouping, expr: args[0] };
    if (args.length === 2) return { type: "aggregate", op, grouping, param: args[0], expr: args[1] };
    return this.fail(n, `${op} with ${args.length} arguments`);
  }

  private binary(n: SyntaxNode): Node {
    const [lhs, rhs] = this.exprs(n);
    // The operator is the token between the operands, the first child that is not an expression.
    const opNode = lhs.nextSibling!;
    const node: Node = { type: "binary", op: this.text(opNode).toLowerCase(), lhs: this.expr(lhs), rhs: this.expr(rhs) };
    if (n.getChild("BoolModifier")) node.bool = true;
    const clause = n.getChild("MatchingModifierClause");
    if (clause) {
      const [labels, groupLabels] = clause.getChildren("GroupingLabels");
      node.matching = { on: clause.getChild("On") !== null, labels: this.labels(labels) };
      const side = clause.getChild("GroupLeft") ? "left" : clause.getChild("GroupRight") ? "right" : undefined;
      if (side) node.group = { side, labels: groupLabels ? this.labels(groupLabels) : [] };
    }
    if (n.getChild("FillModifier")) this.fail(n, "fill modifiers are not supported");
    return node;
  }
}

/** A PromQL string literal's value: Go's escapes in "..." and '...', none in `...`. */
function unquote(literal: string): string {
  const quote = literal[0];
  // Lezer's grammar lets a string run unterminated to the end of the line; Prometheus does not.
  if (literal.length < 2 || !literal.endsWith(quote)) throw new Error(`unterminated PromQL string ${literal}`);
  const body = literal.slice(1, -1);
  if (quote === "`") return body;
  const simple: Record<string, string> = { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\", "'": "'", '"': '"' };
  return body.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/g, (whole, e: string) => {
    if (e in simple) return simple[e];
    if (/^[xuU]/.test(e)) return String.fromCodePoint(parseInt(e.slice(1), 16));
    if (/^[0-7]{3}$/.test(e)) return String.fromCodePoint(parseInt(e, 8));
    throw new Error(`unknown escape ${whole} in PromQL string ${literal}`);
  });
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
function durationSeconds(text: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
  let total = 0;
  for (const m of text.matchAll(/([0-9]+)(ms|[smhdwy])/g)) total += Number(m[1]) * units[m[2]];
  return total;
}
