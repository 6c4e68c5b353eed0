// The metric parts of the configuration, with Istio stats PluginConfig semantics:
//   metrics[]:     { name, dimensions: {tag: expression}, tags_to_remove: [tag], drop }
//                  applied in order; an empty or absent name means every metric.
//   definitions[]: { name, value: expression, type: COUNTER | GAUGE | HISTOGRAM }
//                  custom HTTP metrics named istio_<name>, with only the labels metrics[]
//                  entries add to them (as Istio: no standard labels of their own).
// Expressions are compiled here, once. As in Istio, a dimension whose expression does not parse
// is dropped (a standard label with it, for the metrics the entry names) and one that parses but
// cannot be evaluated reports `unknown`; both are logged as warnings, and the rest is kept.
// Entries of the wrong shape (a string where an object belongs) refuse the configuration.
import { JsonKind, JsonValue } from "./json";
import { compileExpression, ConstantResolver, missingExpression } from "../expr/parser";
import { Expr } from "../expr/ast";
import { LABEL_NAMES } from "../stats/labels";
import { DefinitionType, MetricDefinition, MetricOverride } from "../stats/plan";
import { protoBool, protoEnum, protoFieldName } from "./protojson";

/** Metric names of the standard families, as Istio's configuration names them (no istio_ prefix). */
export const HTTP_METRIC_NAMES: string[] = ["requests_total", "request_duration_milliseconds", "request_bytes", "response_bytes"];
export const TCP_METRIC_NAMES: string[] = [
  "tcp_sent_bytes_total", "tcp_received_bytes_total", "tcp_connections_opened_total", "tcp_connections_closed_total",
];

export class FieldError {
  constructor(
    public field: string,
    public value: JsonValue | null,
    public message: string,
  ) {}
}

/** Prometheus label names, minus the ones Prometheus or histograms reserve. */
export function isValidTagName(tag: string): bool {
  if (tag.length == 0 || tag.length > 128 || tag == "le" || tag.startsWith("__")) return false;
  for (let i = 0; i < tag.length; i++) {
    const c = tag.charCodeAt(i);
    const letter = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c == 0x5f;
    if (!letter && !(i > 0 && c >= 0x30 && c <= 0x39)) return false;
  }
  return true;
}

/** A refusal naming `field` unless `value` is of `kind` (`what` says which, for the message). */
export function expectKind(field: string, value: JsonValue, kind: JsonKind, what: string): FieldError | null {
  return value.kind == kind ? null : new FieldError(field, value, "expected " + what + ", got " + value.kindName());
}

/**
 * Compiles the expression of `field`: the Expr, a missing-valued Expr (with a warning) when it
 * parses but cannot be evaluated, or null (with a warning) when it does not parse.
 */
function compile(field: string, text: string, constants: ConstantResolver, warnings: string[]): Expr | null {
  const compiled = compileExpression(text, constants);
  const expr = compiled.expr;
  if (expr !== null) return expr;
  if (compiled.syntax) {
    warnings.push("field '" + field + "': expression does not parse, dropped: " + compiled.error);
    return null;
  }
  warnings.push("field '" + field + "': expression cannot be evaluated, reports unknown: " + compiled.error);
  return missingExpression();
}

const METRIC_TYPES: string[] = ["COUNTER", "GAUGE", "HISTOGRAM"];

export function parseDefinitions(list: JsonValue, constants: ConstantResolver, out: MetricDefinition[], warnings: string[]): FieldError | null {
  const listError = expectKind("definitions", list, JsonKind.Array, "an array");
  if (listError !== null) return listError;
  for (let i = 0; i < list.items.length; i++) {
    const at = "definitions[" + i.toString() + "]";
    const entry = list.items[i];
    const entryError = expectKind(at, entry, JsonKind.Object, "an object");
    if (entryError !== null) return entryError;
    let name = "";
    let type = DefinitionType.Counter;
    let valueText = "";
    let valueField = at + ".value";
    for (let k = 0; k < entry.keys.length; k++) {
      const key = protoFieldName(entry.keys[k]);
      const v = entry.items[k];
      const field = at + "." + key;
      if (v.kind == JsonKind.Null) continue;
      if (key == "name") {
        const e = expectKind(field, v, JsonKind.String, "a string");
        if (e !== null) return e;
        if (!isValidTagName(v.stringValue)) return new FieldError(field, v, "not a valid metric name");
        name = v.stringValue;
      } else if (key == "value") {
        const e = expectKind(field, v, JsonKind.String, "an expression string");
        if (e !== null) return e;
        valueText = v.stringValue;
        valueField = field;
      } else if (key == "type") {
        const t = protoEnum(v, METRIC_TYPES);
        if (t < 0) return new FieldError(field, v, "expected COUNTER, GAUGE or HISTOGRAM");
        type = <DefinitionType>t;
      } else {
        return new FieldError(field, v, "unknown field");
      }
    }
    if (name.length == 0) return new FieldError(at + ".name", entry, "missing");
    // Istio skips, logging, a definition of a standard metric and one whose value does not parse.
    if (HTTP_METRIC_NAMES.includes(name) || TCP_METRIC_NAMES.includes(name)) {
      warnings.push("field '" + at + ".name': re-defining the standard metric '" + name + "' is not allowed, skipped");
      continue;
    }
    const value = compile(valueField, valueText, constants, warnings);
    if (value === null) continue;
    for (let d = 0; d < out.length; d++) {
      if (out[d].name == name) return new FieldError(at + ".name", entry, "metric '" + name + "' defined twice");
    }
    out.push(new MetricDefinition(name, value, type));
  }
  return null;
}

/** Parses metrics[]; `definitions` must be parsed first, so their names are known. */
export function parseMetricOverrides(
  list: JsonValue,
  constants: ConstantResolver,
  definitions: MetricDefinition[],
  out: MetricOverride[],
  warnings: string[],
): FieldError | null {
  const listError = expectKind("metrics", list, JsonKind.Array, "an array");
  if (listError !== null) return listError;
  for (let i = 0; i < list.items.length; i++) {
    const at = "metrics[" + i.toString() + "]";
    const entry = list.items[i];
    const entryError = expectKind(at, entry, JsonKind.Object, "an object");
    if (entryError !== null) return entryError;
    const o = new MetricOverride();
    // Dimensions whose expression does not parse: a standard label among them is removed.
    const unparsed: string[] = [];
    for (let k = 0; k < entry.keys.length; k++) {
      const key = protoFieldName(entry.keys[k]);
      const v = entry.items[k];
      const field = at + "." + key;
      if (v.kind == JsonKind.Null) continue;
      if (key == "name") {
        const e = expectKind(field, v, JsonKind.String, "a string");
        if (e !== null) return e;
        if (v.stringValue.length > 0 && !isKnownMetric(v.stringValue, definitions)) {
          // Istio applies such an entry to nothing.
          warnings.push("field '" + field + "': no metric named '" + v.stringValue + "', the entry applies to nothing");
        }
        o.name = v.stringValue;
      } else if (key == "dimensions") {
        const e = expectKind(field, v, JsonKind.Object, "an object of tag: expression");
        if (e !== null) return e;
        for (let d = 0; d < v.keys.length; d++) {
          const tag = v.keys[d];
          const item = v.items[d];
          if (!isValidTagName(tag)) return new FieldError(field + "." + tag, item, "not a valid label name");
          const te = expectKind(field + "." + tag, item, JsonKind.String, "an expression string");
          if (te !== null) return te;
          const expr = compile(field + "." + tag, item.stringValue, constants, warnings);
          if (expr === null) {
            unparsed.push(tag);
            continue;
          }
          o.expressions.push(expr);
          o.tags.push(tag);
        }
      } else if (key == "tags_to_remove") {
        const e = expectKind(field, v, JsonKind.Array, "an array of label names");
        if (e !== null) return e;
        for (let t = 0; t < v.items.length; t++) {
          const item = v.items[t];
          if (item.kind != JsonKind.String) {
            return new FieldError(field + "[" + t.toString() + "]", item, "expected a label name");
          }
          if (!LABEL_NAMES.includes(item.stringValue)) {
            // Istio removes standard labels only, and logs any other name.
            warnings.push("field '" + field + "[" + t.toString() + "]': '" + item.stringValue + "' is not a standard label, ignored");
            continue;
          }
          o.tagsToRemove.push(item.stringValue);
        }
      } else if (key == "drop") {
        const b = protoBool(v);
        if (b < 0) return new FieldError(field, v, "expected a boolean, got " + v.kindName());
        o.drop = b == 1;
      } else if (key == "match") {
        return new FieldError(field, v, "not supported (Istio does not implement it either)");
      } else {
        return new FieldError(field, v, "unknown field");
      }
    }
    for (let u = 0; u < unparsed.length; u++) {
      if (LABEL_NAMES.includes(unparsed[u]) && !o.tagsToRemove.includes(unparsed[u])) o.tagsToRemove.push(unparsed[u]);
    }
    out.push(o);
  }
  return null;
}

function isKnownMetric(name: string, definitions: MetricDefinition[]): bool {
  if (HTTP_METRIC_NAMES.includes(name) || TCP_METRIC_NAMES.includes(name)) return true;
  for (let i = 0; i < definitions.length; i++) if (definitions[i].name == name) return true;
  return false;
}
