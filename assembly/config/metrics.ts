// The metric parts of the configuration, with Istio stats PluginConfig semantics:
//   metrics[]:     { name, dimensions: {tag: expression}, tags_to_remove: [tag], drop }
//                  applied in order; an empty or absent name means every metric.
//   definitions[]: { name, value: expression, type: COUNTER | GAUGE | HISTOGRAM }
//                  custom HTTP metrics named istio_<name>, with the standard labels.
// Expressions are compiled here, once; a bad one refuses the configuration naming the field.
import { JsonKind, JsonValue } from "./json";
import { compileExpression, ConstantResolver } from "../expr/parser";
import { Expr } from "../expr/ast";

/** Metric names of the standard families, as Istio's configuration names them (no istio_ prefix). */
export const HTTP_METRIC_NAMES: string[] = ["requests_total", "request_duration_milliseconds", "request_bytes", "response_bytes"];
export const TCP_METRIC_NAMES: string[] = [
  "tcp_sent_bytes_total", "tcp_received_bytes_total", "tcp_connections_opened_total", "tcp_connections_closed_total",
];

export const enum DefinitionType {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}

export class MetricOverride {
  /** "" applies to every metric. */
  name: string = "";
  tags: string[] = [];
  expressions: Expr[] = [];
  tagsToRemove: string[] = [];
  drop: bool = false;
}

export class MetricDefinition {
  constructor(
    public name: string,
    public value: Expr,
    public type: DefinitionType,
  ) {}
}

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

function expectKind(field: string, value: JsonValue, kind: JsonKind, what: string): FieldError | null {
  return value.kind == kind ? null : new FieldError(field, value, "expected " + what + ", got " + value.kindName());
}

function compile(field: string, value: JsonValue, constants: ConstantResolver, out: Expr[]): FieldError | null {
  const kindError = expectKind(field, value, JsonKind.String, "an expression string");
  if (kindError !== null) return kindError;
  const compiled = compileExpression(value.stringValue, constants);
  const expr = compiled.expr;
  if (expr === null) return new FieldError(field, value, "bad expression: " + compiled.error);
  out.push(expr);
  return null;
}

export function parseDefinitions(list: JsonValue, constants: ConstantResolver, out: MetricDefinition[]): FieldError | null {
  const listError = expectKind("definitions", list, JsonKind.Array, "an array");
  if (listError !== null) return listError;
  for (let i = 0; i < list.items.length; i++) {
    const at = "definitions[" + i.toString() + "]";
    const entry = list.items[i];
    const entryError = expectKind(at, entry, JsonKind.Object, "an object");
    if (entryError !== null) return entryError;
    let name = "";
    let type = DefinitionType.Counter;
    const value: Expr[] = [];
    for (let k = 0; k < entry.keys.length; k++) {
      const key = entry.keys[k];
      const v = entry.items[k];
      const field = at + "." + key;
      if (key == "name") {
        const e = expectKind(field, v, JsonKind.String, "a string");
        if (e !== null) return e;
        if (!isValidTagName(v.stringValue)) return new FieldError(field, v, "not a valid metric name");
        if (HTTP_METRIC_NAMES.includes(v.stringValue) || TCP_METRIC_NAMES.includes(v.stringValue)) {
          return new FieldError(field, v, "re-defining a standard metric is not allowed");
        }
        name = v.stringValue;
      } else if (key == "value") {
        const e = compile(field, v, constants, value);
        if (e !== null) return e;
      } else if (key == "type") {
        const t = v.kind == JsonKind.String ? v.stringValue : "";
        if (t == "COUNTER") type = DefinitionType.Counter;
        else if (t == "GAUGE") type = DefinitionType.Gauge;
        else if (t == "HISTOGRAM") type = DefinitionType.Histogram;
        else return new FieldError(field, v, "expected COUNTER, GAUGE or HISTOGRAM");
      } else {
        return new FieldError(field, v, "unknown field");
      }
    }
    if (name.length == 0) return new FieldError(at + ".name", entry, "missing");
    if (value.length == 0) return new FieldError(at + ".value", entry, "missing");
    for (let d = 0; d < out.length; d++) {
      if (out[d].name == name) return new FieldError(at + ".name", entry, "metric '" + name + "' defined twice");
    }
    out.push(new MetricDefinition(name, value[0], type));
  }
  return null;
}

/** Parses metrics[]; `definitions` must be parsed first, so their names are known. */
export function parseMetricOverrides(
  list: JsonValue,
  constants: ConstantResolver,
  definitions: MetricDefinition[],
  out: MetricOverride[],
): FieldError | null {
  const listError = expectKind("metrics", list, JsonKind.Array, "an array");
  if (listError !== null) return listError;
  for (let i = 0; i < list.items.length; i++) {
    const at = "metrics[" + i.toString() + "]";
    const entry = list.items[i];
    const entryError = expectKind(at, entry, JsonKind.Object, "an object");
    if (entryError !== null) return entryError;
    const o = new MetricOverride();
    for (let k = 0; k < entry.keys.length; k++) {
      const key = entry.keys[k];
      const v = entry.items[k];
      const field = at + "." + key;
      if (key == "name") {
        const e = expectKind(field, v, JsonKind.String, "a string");
        if (e !== null) return e;
        if (v.stringValue.length > 0 && !isKnownMetric(v.stringValue, definitions)) {
          return new FieldError(field, v, "unknown metric '" + v.stringValue + "' (standard names such as requests_total, or a definitions[] name)");
        }
        o.name = v.stringValue;
      } else if (key == "dimensions") {
        const e = expectKind(field, v, JsonKind.Object, "an object of tag: expression");
        if (e !== null) return e;
        for (let d = 0; d < v.keys.length; d++) {
          const tag = v.keys[d];
          if (!isValidTagName(tag)) return new FieldError(field + "." + tag, v.items[d], "not a valid label name");
          const ce = compile(field + "." + tag, v.items[d], constants, o.expressions);
          if (ce !== null) return ce;
          o.tags.push(tag);
        }
      } else if (key == "tags_to_remove") {
        const e = expectKind(field, v, JsonKind.Array, "an array of label names");
        if (e !== null) return e;
        for (let t = 0; t < v.items.length; t++) {
          const item = v.items[t];
          if (item.kind != JsonKind.String || !isValidTagName(item.stringValue)) {
            return new FieldError(field + "[" + t.toString() + "]", item, "expected a label name");
          }
          o.tagsToRemove.push(item.stringValue);
        }
      } else if (key == "drop") {
        const e = expectKind(field, v, JsonKind.Bool, "a boolean");
        if (e !== null) return e;
        o.drop = v.boolValue;
      } else if (key == "match") {
        return new FieldError(field, v, "not supported (Istio does not implement it either)");
      } else {
        return new FieldError(field, v, "unknown field");
      }
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
