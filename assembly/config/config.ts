// Plugin configuration: Istio stats PluginConfig field names where they exist, plus this
// plugin's own. Parsed and checked once per configure; every refusal names the field and the
// offset in the JSON text, and nothing is half-applied.
import { JsonKind, JsonParser, JsonValue } from "./json";
import { parseDurationMs } from "./duration";
import { parseTracing, TracingConfig } from "./tracing";
import { protoBool, protoEnum, protoFieldName, protoInteger } from "./protojson";

export { parseDurationMs } from "./duration";
import { ConstantResolver, NoConstants } from "../expr/parser";
import {
  FieldError, HTTP_METRIC_NAMES, parseDefinitions, parseMetricOverrides, TCP_METRIC_NAMES,
} from "./metrics";
import { MetricDefinition, MetricOverride, planSeries, SeriesPlan } from "../stats/plan";
import { HTTP_LABEL_COUNT, TCP_LABEL_COUNT } from "../stats/labels";

export const enum ReporterMode {
  /** From the listener direction: inbound -> destination, outbound -> source. */
  Auto,
  Source,
  Destination,
  /** Istio's SERVER_GATEWAY: a waypoint or gateway reporting on behalf of the destination. */
  Waypoint,
}

/** When peer metadata from the downstream is believed for labels (docs/trust.md). */
export const enum PeerTrust {
  /** Every caller is a mesh proxy: Istio's sidecar behaviour. */
  Always,
  /** Only callers that presented a verified client certificate. */
  MtlsOnly,
  /** Never: gateways and anything facing callers outside the mesh. */
  Never,
}

export class PluginConfig {
  reporter: ReporterMode = ReporterMode.Auto;
  /** Upper bound on distinct label tuples per VM; further tuples go to an overflow series. */
  maxSeries: i32 = 10000;
  /** Istio sets this on inbound and gateway listeners: no Host header as destination_service. */
  disableHostHeaderFallback: bool = false;
  peerMetadataTrust: PeerTrust = PeerTrust.Always;
  /** No identity sent to, and no answer believed from, PassthroughCluster or istio.external clusters. */
  skipExternalClusters: bool = true;
  /** How often open TCP connections report their byte deltas (Istio's default: 5 s). */
  tcpReportingMs: u32 = 5000;
  /** Label layout of the HTTP families (the four standard ones, then definitions) and the TCP ones. */
  httpPlan: SeriesPlan = new SeriesPlan();
  tcpPlan: SeriesPlan = new SeriesPlan();
  tracing: TracingConfig = new TracingConfig();
}

// proxy-wasm metric types of the standard families, in HTTP_METRIC_NAMES / TCP_METRIC_NAMES order.
const HTTP_METRIC_TYPES: i32[] = [0, 2, 2, 2];
const TCP_METRIC_TYPES: i32[] = [0, 0, 0, 0];

export class ConfigResult {
  config: PluginConfig | null = null;
  error: string = "";
  /**
   * What was accepted but not applied as written, one line each, for the log: dimensions whose
   * expression does not parse (dropped) or cannot be evaluated (`unknown`), entries naming no
   * known metric or label. Istio accepts these too, logging them.
   */
  warnings: string[] = [];
}

// Fields of Istio's stats PluginConfig that its Wasm-era EnvoyFilters still send; accepted so
// those configs load, and ignored because Istio itself reserved them.
const LEGACY_IGNORED_FIELDS: string[] = ["debug", "stat_prefix", "field_separator", "value_separator", "max_peer_cache_size"];

function refuse(result: ConfigResult, field: string, value: JsonValue | null, message: string): ConfigResult {
  const at = value === null ? "" : " (offset " + value.pos.toString() + ")";
  result.error = "field '" + field + "'" + at + ": " + message;
  result.config = null;
  return result;
}

/**
 * Parses and checks a plugin configuration. `constants` answers node metadata in expressions;
 * the default knows none.
 */
export function parseConfig(text: string, constants: ConstantResolver = new NoConstants()): ConfigResult {
  const result = new ConfigResult();
  const config = new PluginConfig();
  const overrides: MetricOverride[] = [];
  const definitions: MetricDefinition[] = [];
  if (text.trim().length == 0) return plan(result, config, overrides, definitions);
  const parser = new JsonParser(text);
  const root = parser.parse();
  if (root === null) {
    result.error = "malformed JSON at offset " + parser.errorPos.toString() + ": " + parser.error;
    return result;
  }
  if (root.kind != JsonKind.Object) return refuse(result, "<root>", root, "expected an object, got " + root.kindName());

  // Definitions first, whatever the member order, so metrics[] can name them.
  for (let i = 0; i < root.keys.length; i++) {
    if (protoFieldName(root.keys[i]) != "definitions" || root.items[i].kind == JsonKind.Null) continue;
    const e = parseDefinitions(root.items[i], constants, definitions, result.warnings);
    if (e !== null) return refuseField(result, e);
  }

  for (let i = 0; i < root.keys.length; i++) {
    // Field names in proto or lowerCamelCase form; null is the field's default (protobuf JSON).
    const key = protoFieldName(root.keys[i]);
    const value = root.items[i];
    if (value.kind == JsonKind.Null) continue;
    if (key == "reporter") {
      const r = value.kind == JsonKind.String ? value.stringValue : "";
      const istio = protoEnum(value, ISTIO_REPORTERS);
      if (istio == 0 || (value.kind == JsonKind.String && r == "")) config.reporter = ReporterMode.Auto;
      else if (istio == 1 || r == "waypoint") config.reporter = ReporterMode.Waypoint;
      else if (r == "source") config.reporter = ReporterMode.Source;
      else if (r == "destination") config.reporter = ReporterMode.Destination;
      else if (value.kind != JsonKind.String && value.kind != JsonKind.Number) {
        return refuse(result, key, value, "expected a string, got " + value.kindName());
      } else {
        return refuse(result, key, value, "unknown reporter '" + (value.kind == JsonKind.String ? r : (<i64>value.numberValue).toString()) +
          "' (expected UNSPECIFIED, SERVER_GATEWAY, source, destination or waypoint)");
      }
    } else if (key == "disable_host_header_fallback") {
      const b = protoBool(value);
      if (b < 0) return refuse(result, key, value, "expected a boolean, got " + value.kindName());
      config.disableHostHeaderFallback = b == 1;
    } else if (key == "peer_metadata_trust") {
      if (value.kind != JsonKind.String) return refuse(result, key, value, "expected a string, got " + value.kindName());
      const t = value.stringValue;
      if (t == "always") config.peerMetadataTrust = PeerTrust.Always;
      else if (t == "mtls_only") config.peerMetadataTrust = PeerTrust.MtlsOnly;
      else if (t == "never") config.peerMetadataTrust = PeerTrust.Never;
      else return refuse(result, key, value, "expected always, mtls_only or never");
    } else if (key == "skip_external_clusters") {
      const b = protoBool(value);
      if (b < 0) return refuse(result, key, value, "expected a boolean, got " + value.kindName());
      config.skipExternalClusters = b == 1;
    } else if (key == "tcp_reporting_duration") {
      const ms = value.kind == JsonKind.String ? parseDurationMs(value.stringValue) : -1;
      if (ms < 100 || ms > 3600000) return refuse(result, key, value, "expected a duration from \"100ms\" to \"1h\", such as \"5s\"");
      config.tcpReportingMs = <u32>ms;
    } else if (key == "max_series") {
      const n = integerIn(value, 1, 1000000);
      if (n < 0) return refuse(result, key, value, "expected an integer from 1 to 1000000");
      config.maxSeries = <i32>n;
    } else if (key == "metrics") {
      const e = parseMetricOverrides(value, constants, definitions, overrides, result.warnings);
      if (e !== null) return refuseField(result, e);
    } else if (key == "tracing") {
      const e = parseTracing(value, config.tracing);
      if (e !== null) return refuseField(result, e);
    } else if (key == "definitions") {
      // parsed above
    } else if (LEGACY_IGNORED_FIELDS.includes(key)) {
      // accepted for compatibility, no effect
    } else if (key == "rotation_interval" || key == "graceful_deletion_interval") {
      // Istio deprecated these and ignores them; a duration all the same.
      if (value.kind != JsonKind.String || parseDurationMs(value.stringValue) < 0) {
        return refuse(result, key, value, "expected a duration such as \"5s\"");
      }
      result.warnings.push("field '" + key + "': deprecated in Istio, ignored");
      // accepted for compatibility, no effect
    } else {
      return refuse(result, key, value, "unknown field");
    }
  }
  return plan(result, config, overrides, definitions);
}

function refuseField(result: ConfigResult, e: FieldError): ConfigResult {
  return refuse(result, e.field, e.value, e.message);
}

function plan(result: ConfigResult, config: PluginConfig, overrides: MetricOverride[], definitions: MetricDefinition[]): ConfigResult {
  config.httpPlan = planSeries(HTTP_LABEL_COUNT, HTTP_METRIC_NAMES, HTTP_METRIC_TYPES, definitions, overrides);
  config.tcpPlan = planSeries(TCP_LABEL_COUNT, TCP_METRIC_NAMES, TCP_METRIC_TYPES, [], overrides);
  const error = config.httpPlan.error.length > 0 ? config.httpPlan.error : config.tcpPlan.error;
  if (error.length > 0) {
    result.error = error;
    return result;
  }
  result.config = config;
  return result;
}

/** The integer value of a JSON number (or decimal string, as protobuf JSON allows) within [min, max], or -1. */
function integerIn(value: JsonValue, min: f64, max: f64): f64 {
  const n = protoInteger(value);
  if (isNaN(n) || n < min || n > max) return -1;
  return n;
}

// Istio's stats.Reporter enum, by number.
const ISTIO_REPORTERS: string[] = ["UNSPECIFIED", "SERVER_GATEWAY"];
