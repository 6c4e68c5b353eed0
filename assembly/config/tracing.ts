// The `tracing` part of the configuration. Trace context (request ids, W3C and B3 headers,
// sampling) is on by default; spans are reported only when a Zipkin or an OTLP collector (or
// both) is configured.
//   tracing: {
//     enabled: true,                          // false turns trace context off entirely
//     random_sampling_percentage: 1.0,        // Istio's randomSamplingPercentage, 0-100
//     read_formats: ["w3c", "b3", "b3multi"], // precedence order ("b3" is the single header)
//     write_formats: ["w3c", "b3multi"],      // written to the next hop, consistently
//     tracestate_key: "mtw",
//     zipkin: { cluster, path: "/api/v2/spans", authority: <cluster>, timeout: "2s", headers: {name: value} },
//     otlp: { cluster, path: "/v1/traces", authority: <cluster>, timeout: "2s", headers: {name: value} },
//     flush_interval: "1s", max_batch_spans: 100, max_buffered_spans: 1000,
//     custom_tags: { <tag>: {literal: {value}} | {header: {name, default_value}}
//                         | {environment: {name, default_value}} | {metadata: {key, default_value}} },
//   }
import { JsonKind, JsonValue } from "./json";
import { expectKind, FieldError } from "./metrics";
import { parseDurationMs } from "./duration";
import { isPortableTraceStateKey, TraceFormat } from "../trace/context";

export const enum CustomTagKind {
  Literal,
  Header,
  Environment,
  Metadata,
}

export class CustomTag {
  constructor(
    public tag: string,
    public kind: CustomTagKind,
    /** The literal value, or the header / environment variable / node metadata key. */
    public source: string,
    public defaultValue: string,
  ) {}
}

/** Where one span format goes: an Envoy cluster of the collector, and the request to it. */
export class CollectorConfig {
  /** "" = this format is not exported. */
  cluster: string = "";
  authority: string = "";
  timeoutMs: u32 = 2000;
  /** Extra request headers (e.g. a tenant or an API key), lowercase names. */
  headerNames: string[] = [];
  headerValues: string[] = [];

  constructor(public path: string) {}

  isOn(): bool {
    return this.cluster.length > 0;
  }
}

export class TracingConfig {
  enabled: bool = true;
  samplingPercentage: f64 = 1.0;
  readFormats: TraceFormat[] = [TraceFormat.W3C, TraceFormat.B3Single, TraceFormat.B3Multi];
  writeW3c: bool = true;
  writeB3Multi: bool = true;
  writeB3Single: bool = false;
  traceStateKey: string = "mtw";
  /** Zipkin v2 JSON (POST a JSON array). */
  zipkin: CollectorConfig = new CollectorConfig("/api/v2/spans");
  /** OTLP/HTTP with protobuf encoding. */
  otlp: CollectorConfig = new CollectorConfig("/v1/traces");
  flushIntervalMs: u32 = 1000;
  maxBatchSpans: i32 = 100;
  maxBufferedSpans: i32 = 1000;
  customTags: CustomTag[] = [];
}

function intIn(field: string, v: JsonValue, min: f64, max: f64): FieldError | null {
  if (v.kind != JsonKind.Number || v.numberValue != Math.floor(v.numberValue) || v.numberValue < min || v.numberValue > max) {
    return new FieldError(field, v, "expected an integer from " + (<i64>min).toString() + " to " + (<i64>max).toString());
  }
  return null;
}

function durationIn(field: string, v: JsonValue, minMs: f64, maxMs: f64, out: StaticArray<f64>): FieldError | null {
  const ms = v.kind == JsonKind.String ? parseDurationMs(v.stringValue) : -1;
  if (ms < minMs || ms > maxMs) return new FieldError(field, v, "expected a duration such as \"1s\" or \"500ms\", within limits");
  out[0] = ms;
  return null;
}

function formatOf(name: string): TraceFormat {
  if (name == "w3c") return TraceFormat.W3C;
  if (name == "b3") return TraceFormat.B3Single;
  if (name == "b3multi") return TraceFormat.B3Multi;
  return TraceFormat.None;
}

function formats(field: string, v: JsonValue, out: TraceFormat[]): FieldError | null {
  const e = expectKind(field, v, JsonKind.Array, "an array of w3c, b3, b3multi");
  if (e !== null) return e;
  for (let i = 0; i < v.items.length; i++) {
    const item = v.items[i];
    const f = item.kind == JsonKind.String ? formatOf(item.stringValue) : TraceFormat.None;
    if (f == TraceFormat.None || out.includes(f)) return new FieldError(field + "[" + i.toString() + "]", item, "expected w3c, b3 or b3multi, each once");
    out.push(f);
  }
  return null;
}

export function parseTracing(v: JsonValue, t: TracingConfig): FieldError | null {
  const e = expectKind("tracing", v, JsonKind.Object, "an object");
  if (e !== null) return e;
  const ms = new StaticArray<f64>(1);
  for (let i = 0; i < v.keys.length; i++) {
    const key = v.keys[i];
    const item = v.items[i];
    const field = "tracing." + key;
    let err: FieldError | null = null;
    if (key == "enabled") {
      err = expectKind(field, item, JsonKind.Bool, "a boolean");
      if (err === null) t.enabled = item.boolValue;
    } else if (key == "random_sampling_percentage") {
      if (item.kind != JsonKind.Number || !(item.numberValue >= 0 && item.numberValue <= 100)) {
        err = new FieldError(field, item, "expected a number from 0 to 100");
      } else t.samplingPercentage = item.numberValue;
    } else if (key == "read_formats") {
      const list: TraceFormat[] = [];
      err = formats(field, item, list);
      if (err === null) t.readFormats = list;
    } else if (key == "write_formats") {
      const list: TraceFormat[] = [];
      err = formats(field, item, list);
      if (err === null) {
        t.writeW3c = list.includes(TraceFormat.W3C);
        t.writeB3Single = list.includes(TraceFormat.B3Single);
        t.writeB3Multi = list.includes(TraceFormat.B3Multi);
      }
    } else if (key == "tracestate_key") {
      err = expectKind(field, item, JsonKind.String, "a string");
      if (err === null && item.stringValue.length > 0 && !isPortableTraceStateKey(item.stringValue)) {
        err = new FieldError(field, item, "not a valid W3C tracestate key");
      }
      if (err === null) t.traceStateKey = item.stringValue;
    } else if (key == "zipkin") {
      err = parseCollector(field, item, t.zipkin);
    } else if (key == "otlp") {
      err = parseCollector(field, item, t.otlp);
    } else if (key == "flush_interval") {
      err = durationIn(field, item, 10, 60000, ms);
      if (err === null) t.flushIntervalMs = <u32>ms[0];
    } else if (key == "max_batch_spans") {
      err = intIn(field, item, 1, 10000);
      if (err === null) t.maxBatchSpans = <i32>item.numberValue;
    } else if (key == "max_buffered_spans") {
      err = intIn(field, item, 1, 100000);
      if (err === null) t.maxBufferedSpans = <i32>item.numberValue;
    } else if (key == "custom_tags") {
      err = parseCustomTags(item, t.customTags);
    } else {
      err = new FieldError(field, item, "unknown field");
    }
    if (err !== null) return err;
  }
  if (t.maxBatchSpans > t.maxBufferedSpans) {
    return new FieldError("tracing.max_batch_spans", v, "must not exceed max_buffered_spans");
  }
  return null;
}

// Headers the plugin sets itself, or Envoy derives: not overridable.
const RESERVED_HEADERS = ["content-type", "content-length", "host", "transfer-encoding", "connection", "te"];

function parseCollector(at: string, v: JsonValue, c: CollectorConfig): FieldError | null {
  const e = expectKind(at, v, JsonKind.Object, "an object");
  if (e !== null) return e;
  const ms = new StaticArray<f64>(1);
  for (let i = 0; i < v.keys.length; i++) {
    const key = v.keys[i];
    const item = v.items[i];
    const field = at + "." + key;
    let err: FieldError | null = null;
    if (key == "timeout") {
      err = durationIn(field, item, 10, 60000, ms);
      if (err === null) c.timeoutMs = <u32>ms[0];
    } else if (key == "headers") {
      err = parseHeaders(field, item, c);
    } else {
      err = expectKind(field, item, JsonKind.String, "a string");
      if (err !== null) return err;
      if (key == "cluster") c.cluster = item.stringValue;
      else if (key == "path") {
        if (!item.stringValue.startsWith("/")) return new FieldError(field, item, "expected a path starting with /");
        c.path = item.stringValue;
      } else if (key == "authority") c.authority = item.stringValue;
      else err = new FieldError(field, item, "unknown field");
    }
    if (err !== null) return err;
  }
  if (c.cluster.length == 0) return new FieldError(at + ".cluster", v, "missing");
  if (c.authority.length == 0) c.authority = c.cluster;
  return null;
}

function parseHeaders(at: string, v: JsonValue, c: CollectorConfig): FieldError | null {
  const e = expectKind(at, v, JsonKind.Object, "an object of header name: value");
  if (e !== null) return e;
  for (let i = 0; i < v.keys.length; i++) {
    const name = asciiLower(v.keys[i]);
    const item = v.items[i];
    const field = at + "." + v.keys[i];
    if (!isHeaderName(name)) return new FieldError(field, item, "not a valid HTTP header name");
    if (RESERVED_HEADERS.includes(name)) return new FieldError(field, item, "set by the plugin or Envoy, not configurable");
    if (c.headerNames.includes(name)) return new FieldError(field, item, "given twice");
    const me = expectKind(field, item, JsonKind.String, "a string");
    if (me !== null) return me;
    if (!isHeaderValue(item.stringValue)) return new FieldError(field, item, "control characters are not allowed in a header value");
    c.headerNames.push(name);
    c.headerValues.push(item.stringValue);
  }
  return null;
}

// An RFC 9110 token: no pseudo-headers, separators, spaces or non-ASCII.
function isHeaderName(s: string): bool {
  if (s.length == 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);
    if (!alnum && "!#$%&'*+-.^_`|~".indexOf(String.fromCharCode(c)) < 0) return false;
  }
  return true;
}

// Visible characters, spaces and tabs (obs-text included); no CR, LF, NUL or other controls.
function isHeaderValue(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c != 0x09) || c == 0x7f || c > 0xff) return false;
  }
  return true;
}

function parseCustomTags(v: JsonValue, out: CustomTag[]): FieldError | null {
  const e = expectKind("tracing.custom_tags", v, JsonKind.Object, "an object of tag: source");
  if (e !== null) return e;
  for (let i = 0; i < v.keys.length; i++) {
    const tag = v.keys[i];
    const item = v.items[i];
    const field = "tracing.custom_tags." + tag;
    if (tag.length == 0) return new FieldError(field, item, "empty tag name");
    if (item.kind != JsonKind.Object || item.keys.length != 1) {
      return new FieldError(field, item, "expected one of {literal}, {header}, {environment}, {metadata}");
    }
    const kindName = item.keys[0];
    const spec = item.items[0];
    const at = field + "." + kindName;
    const se = expectKind(at, spec, JsonKind.Object, "an object");
    if (se !== null) return se;
    let kind = CustomTagKind.Literal;
    let sourceKey = "value";
    if (kindName == "literal") kind = CustomTagKind.Literal;
    else if (kindName == "header") {
      kind = CustomTagKind.Header;
      sourceKey = "name";
    } else if (kindName == "environment") {
      kind = CustomTagKind.Environment;
      sourceKey = "name";
    } else if (kindName == "metadata") {
      kind = CustomTagKind.Metadata;
      sourceKey = "key";
    } else return new FieldError(field, item, "unknown tag source '" + kindName + "' (literal, header, environment, metadata)");
    let source = "";
    let defaultValue = "";
    for (let k = 0; k < spec.keys.length; k++) {
      const member = spec.items[k];
      const mfield = at + "." + spec.keys[k];
      const me = expectKind(mfield, member, JsonKind.String, "a string");
      if (me !== null) return me;
      if (spec.keys[k] == sourceKey) source = member.stringValue;
      else if (spec.keys[k] == "default_value" && kind != CustomTagKind.Literal) defaultValue = member.stringValue;
      else return new FieldError(mfield, member, "unknown field");
    }
    if (source.length == 0) return new FieldError(at + "." + sourceKey, spec, "missing");
    // Header names are matched lowercase, as Envoy stores them.
    out.push(new CustomTag(tag, kind, kind == CustomTagKind.Header ? asciiLower(source) : source, defaultValue));
  }
  return null;
}

// Header names are ASCII; String#toLowerCase would pull in Unicode case tables.
function asciiLower(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
  }
  return out;
}
