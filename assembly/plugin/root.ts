// The plugin's root context: one per plugin configuration in each VM. It parses the
// configuration, builds the reporting service (Telemetry) that every stream it creates gets,
// and runs the timer.
import { Context, RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import {
  BufferType, defineMetric, environment, getBufferBytes, getPropertyString, log, LogLevel, MetricType, recordMetric,
  setTickPeriodMs,
} from "../sdk/host";
import { defineHeapGauge } from "../sdk/memory";
import { CustomTagKind } from "../config/tracing";
import { parseConfig, PluginConfig } from "../config/config";
import { sanitizeLabelValue } from "../stats/names";
import { readLocalIdentity } from "./identity";
import { NodeMetadataConstants } from "./expressions";
import { PLUGIN_ROOT_ID } from "./properties";
import { TelemetryStream } from "./stream";
import { Telemetry } from "./telemetry";

export class TelemetryRoot extends RootContext {
  private telemetry: Telemetry | null = null;
  private tickMs: u32 = 1000;
  private tcpReportingMs: u32 = 5000;
  private flushIntervalMs: u32 = 0;
  private sinceTcpReportMs: u32 = 0;
  private sinceSpanFlushMs: u32 = 0;

  createContext(context_id: u32): Context {
    const telemetry = this.telemetry;
    // Envoy creates no stream for a configuration it refused; a bare context is the safe answer.
    if (telemetry === null) return new Context(context_id, this);
    return new TelemetryStream(context_id, this, telemetry);
  }

  // One timer serves both periodic jobs; it ticks at the shorter of their periods.
  onTick(): void {
    const telemetry = this.telemetry;
    if (telemetry === null) return;
    this.sinceTcpReportMs += this.tickMs;
    this.sinceSpanFlushMs += this.tickMs;
    const reportConnections = this.sinceTcpReportMs >= this.tcpReportingMs;
    const flushSpans = this.flushIntervalMs > 0 && this.sinceSpanFlushMs >= this.flushIntervalMs;
    if (reportConnections) this.sinceTcpReportMs = 0;
    if (flushSpans) this.sinceSpanFlushMs = 0;
    telemetry.tick(reportConnections, flushSpans);
  }

  onConfigure(configuration_size: u32): bool {
    const text = String.UTF8.decode(getBufferBytes(BufferType.PluginConfiguration, 0, configuration_size));
    const parsed = parseConfig(text, new NodeMetadataConstants());
    const config = parsed.config;
    if (config === null) {
      // Envoy prefixes the line with "wasm log <plugin name>:".
      log(LogLevel.Error, "configuration refused: " + parsed.error);
      return false;
    }
    for (let i = 0; i < parsed.warnings.length; i++) log(LogLevel.Warn, "configuration: " + parsed.warnings[i]);
    const local = readLocalIdentity();
    const telemetry = new Telemetry(this, config, local, getPropertyString(PLUGIN_ROOT_ID), resolveTagValues(config));
    this.telemetry = telemetry;
    this.tcpReportingMs = config.tcpReportingMs;
    this.flushIntervalMs = telemetry.spans !== null ? config.tracing.flushIntervalMs : 0;
    this.tickMs = this.flushIntervalMs > 0 ? min(config.tcpReportingMs, this.flushIntervalMs) : config.tcpReportingMs;
    setTickPeriodMs(this.tickMs);
    defineHeapGauge();
    defineBuildGauge();
    const w = local.workload;
    log(LogLevel.Info, "configured: workload " + w.workloadName + "." + w.namespace + ", node " + local.nodeId);
    return true;
  }
}

// istio_build{component="proxy",tag="<ISTIO_VERSION>"} 1, as Istio's stats filter reports it
// (the Mesh dashboard's component-versions panel). The name uses the encoding Istio's own
// bootstrap regexes `(component\.(.+?)\.)` and `(tag\.(.+?);\.)` take apart.
function defineBuildGauge(): void {
  const version = new NodeMetadataConstants().nodeMetadata("ISTIO_VERSION");
  const tag = sanitizeLabelValue(version === null || version.length == 0 ? "unknown" : version);
  const id = defineMetric(MetricType.Gauge, "component.proxy.tag." + tag + ";.istio_build");
  if (id >= 0) recordMetric(<u32>id, 1);
}

// Values of the custom span tags that do not depend on the request; "" for header tags.
function resolveTagValues(config: PluginConfig): string[] {
  const tags = config.tracing.customTags;
  const out: string[] = [];
  let env: string[] | null = null;
  for (let i = 0; i < tags.length; i++) {
    const t = tags[i];
    let value: string | null = null;
    if (t.kind == CustomTagKind.Literal) value = t.source;
    else if (t.kind == CustomTagKind.Metadata) value = new NodeMetadataConstants().nodeMetadata(t.source);
    else if (t.kind == CustomTagKind.Environment) {
      if (env === null) env = environment();
      const prefix = t.source + "=";
      for (let e = 0; e < env.length; e++) if (env[e].startsWith(prefix)) value = env[e].substring(prefix.length);
    }
    out.push(value === null ? t.defaultValue : value);
  }
  return out;
}
