// The plugin's root context: one per plugin configuration in each VM. It owns the parsed
// configuration and the metric cache, and creates a stream context per request.
import { Context, RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import { BufferType, getBufferBytes, getPropertyString, log, LogLevel, MetricType } from "../sdk/host";
import { parseConfig, PluginConfig, ReporterMode } from "../config/config";
import { MetricFamily, SeriesCache } from "../stats/registry";
import { encodeTags } from "../stats/names";
import { HTTP_LABEL_COUNT, LABEL_NAMES } from "../stats/labels";
import { PLUGIN_ROOT_ID } from "./properties";
import { HttpStream } from "./http";

export class TelemetryRoot extends RootContext {
  config: PluginConfig = new PluginConfig();
  httpSeries: SeriesCache | null = null;

  createContext(context_id: u32): Context {
    return new HttpStream(context_id, this);
  }

  onConfigure(configuration_size: u32): bool {
    const text = String.UTF8.decode(getBufferBytes(BufferType.PluginConfiguration, 0, configuration_size));
    const parsed = parseConfig(text);
    const config = parsed.config;
    if (config === null) {
      // Envoy prefixes the line with "wasm log <plugin name>:".
      log(LogLevel.Error, "configuration refused: " + parsed.error);
      return false;
    }
    // Istio's Wasm-era root ids fix the direction the way its stats filter did.
    const rootId = getPropertyString(PLUGIN_ROOT_ID);
    if (config.reporter == ReporterMode.Auto && rootId !== null) {
      if (rootId == "stats_outbound") config.reporter = ReporterMode.Source;
      else if (rootId == "stats_inbound") config.reporter = ReporterMode.Destination;
    }
    this.config = config;
    this.httpSeries = new SeriesCache(httpFamilies(), config.maxSeries, overflowTags(HTTP_LABEL_COUNT));
    return true;
  }
}

function httpFamilies(): MetricFamily[] {
  return [
    new MetricFamily("istio_requests_total", MetricType.Counter),
    new MetricFamily("istio_request_duration_milliseconds", MetricType.Histogram),
    new MetricFamily("istio_request_bytes", MetricType.Histogram),
    new MetricFamily("istio_response_bytes", MetricType.Histogram),
  ];
}

function overflowTags(count: i32): string {
  const values = new StaticArray<string>(count);
  for (let i = 0; i < count; i++) values[i] = "overflow";
  return encodeTags(LABEL_NAMES, values, count);
}
