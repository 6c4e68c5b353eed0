// The plugin's root context: one per plugin configuration in each VM. It owns the parsed
// configuration, the local identity, the peer cache and the metric cache, and creates a stream
// context per request.
import { Context, RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import {
  BufferType, defineMetric, environment, getBufferBytes, getPropertyString, incrementMetric, log, LogLevel, MetricType,
  randomBytes, recordMetric, setEffectiveContext, setTickPeriodMs,
} from "../sdk/host";
import { sanitizeLabelValue } from "../stats/names";
import { CustomTagKind } from "../config/tracing";
import { SplitMix64, TraceOptions } from "../trace/context";
import { SpanReporter } from "./reporter";
import { traceOptions } from "./tracing";
import { parseConfig, PluginConfig, ReporterMode } from "../config/config";
import { SeriesCache } from "../stats/registry";
import { PeerCache } from "../peer/cache";
import { WorkloadInfo, workloadFromStruct } from "../peer/workload";
import { base64Decode } from "../peer/base64";
import { decodeStruct } from "../peer/struct";
import { defineHeapGauge } from "../sdk/memory";
import { LocalIdentity, readLocalIdentity } from "./identity";
import { NodeMetadataConstants } from "./expressions";
import { PLUGIN_ROOT_ID } from "./properties";
import { TelemetryStream } from "./stream";
import { TcpTelemetry } from "./tcp";

/** Longest x-envoy-peer-metadata value decoded; longer ones are refused as invalid. */
const MAX_PEER_METADATA_BYTES = 16384;

export class TelemetryRoot extends RootContext {
  config: PluginConfig = new PluginConfig();
  local: LocalIdentity = new LocalIdentity();
  peers: PeerCache = new PeerCache();
  httpSeries: SeriesCache | null = null;
  tcpSeries: SeriesCache | null = null;
  /** TCP connections still open, reported on every tick. */
  openConnections: Set<TcpTelemetry> = new Set();
  /** Trace ids and sampling draws; seeded from the host's random source per configuration. */
  random: SplitMix64 = new SplitMix64(0);
  traceOptions: TraceOptions = new TraceOptions();
  spanReporter: SpanReporter | null = null;
  /** Custom span tag values known at configure time (literal, environment, node metadata). */
  resolvedTagValues: string[] = [];
  private invalidPeerMetadataId: i64 = -1;
  private invalidTraceHeadersId: i64 = -1;
  private untrustedPeerMetadataId: i64 = -1;
  private tickMs: u32 = 1000;
  private sinceTcpReportMs: u32 = 0;
  private sinceSpanFlushMs: u32 = 0;

  createContext(context_id: u32): Context {
    return new TelemetryStream(context_id, this);
  }

  // One timer serves both periodic jobs; it ticks at the shorter of their periods.
  onTick(): void {
    this.sinceTcpReportMs += this.tickMs;
    this.sinceSpanFlushMs += this.tickMs;
    if (this.sinceTcpReportMs >= this.config.tcpReportingMs) {
      this.sinceTcpReportMs = 0;
      const open = this.openConnections.values();
      for (let i = 0; i < open.length; i++) {
        // Property reads in the first report must see the connection, not the root.
        setEffectiveContext(open[i].contextId);
        open[i].report();
      }
      setEffectiveContext(this.context_id);
    }
    const reporter = this.spanReporter;
    if (reporter !== null && this.sinceSpanFlushMs >= this.config.tracing.flushIntervalMs) {
      this.sinceSpanFlushMs = 0;
      reporter.flush();
    }
  }

  countUntrustedPeerMetadata(): void {
    if (this.untrustedPeerMetadataId >= 0) incrementMetric(<u32>this.untrustedPeerMetadataId, 1);
  }

  countInvalidTraceHeaders(): void {
    if (this.invalidTraceHeadersId >= 0) incrementMetric(<u32>this.invalidTraceHeadersId, 1);
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
    // Istio's Wasm-era root ids fix the direction the way its stats filter did.
    const rootId = getPropertyString(PLUGIN_ROOT_ID);
    if (config.reporter == ReporterMode.Auto && rootId !== null) {
      if (rootId == "stats_outbound") config.reporter = ReporterMode.Source;
      else if (rootId == "stats_inbound") config.reporter = ReporterMode.Destination;
    }
    this.config = config;
    this.local = readLocalIdentity();
    this.httpSeries = new SeriesCache(config.httpPlan, config.maxSeries);
    this.tcpSeries = new SeriesCache(config.tcpPlan, config.maxSeries);
    const tracing = config.tracing;
    this.traceOptions = traceOptions(tracing);
    const seed = new ArrayBuffer(8);
    randomBytes(seed);
    this.random = new SplitMix64(load<u64>(changetype<usize>(seed)));
    this.spanReporter = tracing.enabled && tracing.zipkinCluster.length > 0 ? new SpanReporter(this, tracing) : null;
    this.resolvedTagValues = resolveTagValues(config);
    this.tickMs = this.spanReporter !== null ? min(config.tcpReportingMs, tracing.flushIntervalMs) : config.tcpReportingMs;
    setTickPeriodMs(this.tickMs);
    this.invalidPeerMetadataId = defineMetric(MetricType.Counter, "mesh_telemetry_peer_metadata_invalid_total");
    this.invalidTraceHeadersId = defineMetric(MetricType.Counter, "mesh_telemetry_trace_headers_invalid_total");
    this.untrustedPeerMetadataId = defineMetric(MetricType.Counter, "mesh_telemetry_peer_metadata_untrusted_total");
    defineHeapGauge();
    defineBuildGauge();
    const w = this.local.workload;
    log(LogLevel.Info, "configured: workload " + w.workloadName + "." + w.namespace + ", node " + this.local.nodeId);
    return true;
  }

  /**
   * The peer a metadata-exchange header describes, decoded once per peer id. A malformed
   * value yields null (labels become unknown) and is counted; it never fails the request.
   */
  decodePeer(id: string | null, metadata: string): WorkloadInfo | null {
    const key = id === null ? "" : id;
    const cached = this.peers.get(key, metadata);
    if (cached !== null) return cached;
    let peer: WorkloadInfo | null = null;
    if (metadata.length <= MAX_PEER_METADATA_BYTES) {
      const bytes = base64Decode(metadata);
      if (bytes !== null) {
        const struct = decodeStruct(bytes);
        if (struct !== null) peer = workloadFromStruct(struct);
      }
    }
    if (peer === null) {
      if (this.invalidPeerMetadataId >= 0) incrementMetric(<u32>this.invalidPeerMetadataId, 1);
      return null;
    }
    this.peers.put(key, metadata, peer);
    return peer;
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
