// The plugin's root context: one per plugin configuration in each VM. It owns the parsed
// configuration, the local identity, the peer cache and the metric cache, and creates a stream
// context per request.
import { Context, RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import {
  BufferType, defineMetric, getBufferBytes, getPropertyString, incrementMetric, log, LogLevel, MetricType,
  setEffectiveContext, setTickPeriodMs,
} from "../sdk/host";
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
  private invalidPeerMetadataId: i64 = -1;

  createContext(context_id: u32): Context {
    return new TelemetryStream(context_id, this);
  }

  onTick(): void {
    const open = this.openConnections.values();
    for (let i = 0; i < open.length; i++) {
      // Property reads in the first report must see the connection, not the root.
      setEffectiveContext(open[i].contextId);
      open[i].report();
    }
    setEffectiveContext(this.context_id);
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
    setTickPeriodMs(config.tcpReportingMs);
    this.invalidPeerMetadataId = defineMetric(MetricType.Counter, "mesh_telemetry_peer_metadata_invalid_total");
    defineHeapGauge();
    const w = this.local.workload;
    log(LogLevel.Info, "configured: workload " + w.workloadName + "." + w.namespace + ", node " + this.local.nodeId);
    return true;
  }

  /**
   * The peer a metadata-exchange header describes, decoded once per peer id. A malformed
   * value yields null (labels become unknown) and is counted; it never fails the request.
   */
  decodePeer(id: ArrayBuffer | null, metadata: ArrayBuffer): WorkloadInfo | null {
    const key = id === null ? "" : String.UTF8.decode(id);
    if (key.length > 0) {
      const cached = this.peers.get(key);
      if (cached !== null) return cached;
    }
    let peer: WorkloadInfo | null = null;
    if (metadata.byteLength <= MAX_PEER_METADATA_BYTES) {
      const bytes = base64Decode(String.UTF8.decode(metadata));
      if (bytes !== null) {
        const struct = decodeStruct(bytes);
        if (struct !== null) peer = workloadFromStruct(struct);
      }
    }
    if (peer === null) {
      if (this.invalidPeerMetadataId >= 0) incrementMetric(<u32>this.invalidPeerMetadataId, 1);
      return null;
    }
    if (key.length > 0) this.peers.put(key, peer);
    return peer;
  }
}
