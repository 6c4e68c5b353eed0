// The reporting service: one per plugin configuration, owned by the root context and handed to
// every stream. Streams give it plain facts (RequestInfo, ConnectionInfo); it reads what a
// report needs at log time (attributes.ts), turns the facts into Istio's labels (labels.ts),
// metric updates and spans. It owns every cache the reports use, all bounded: peers by
// exchange id, the label tables, and metric ids by label tuple.
import { RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import {
  defineMetric, getHeader, getProperty, getPropertyI64, getPropertyString, incrementMetric, MapType, MetricType, randomBytes, recordMetric,
  setEffectiveContext,
} from "../sdk/host";
import { PluginConfig, ReporterMode } from "../config/config";
import { CustomTagKind } from "../config/tracing";
import { DefinitionType } from "../stats/plan";
import { evaluateToInt } from "../expr/ast";
import { base64Decode } from "../peer/base64";
import { PeerCache, PeerEntry } from "../peer/cache";
import { decodeStruct } from "../peer/struct";
import { WorkloadInfo, workloadFromStruct } from "../peer/workload";
import { HTTP_LABEL_COUNT, Label, TCP_LABEL_COUNT } from "../stats/labels";
import { SeriesCache } from "../stats/registry";
import { SplitMix64 } from "../trace/context";
import { Span, SpanKind } from "../trace/span";
import { At, AttributeReader, LogAttributes } from "./attributes";
import { ClusterEntry, LabelParts, Labels, PROTOCOL_GRPC, PROTOCOL_HTTP, PROTOCOL_TCP } from "./labels";
import { SlotKind } from "../expr/values";
import { REQUEST_HEADERS, RESPONSE_HEADERS } from "./headers";
import { HeaderSnapshot } from "../sdk/headers";
import { HOST_ATTRIBUTES } from "./expressions";
import { LocalIdentity } from "./identity";
import { ConnectionInfo, RequestInfo, Role, Upstream } from "./info";
import * as P from "./properties";
import { SpanReporter } from "./reporter";
import { TraceSettings } from "./tracing";

/** Longest x-envoy-peer-metadata value decoded; longer ones are refused as invalid. */
const MAX_PEER_METADATA_BYTES = 16384;
export class Telemetry {
  readonly tracing: TraceSettings | null;
  readonly spans: SpanReporter | null;
  /** Connections still open, reported on every tick. */
  readonly open: Set<ConnectionInfo> = new Set();
  /** Header snapshots the streams reuse: the VM runs one callback at a time. */
  readonly requestHeaders: HeaderSnapshot = new HeaderSnapshot(REQUEST_HEADERS.length);
  readonly responseHeaders: HeaderSnapshot = new HeaderSnapshot(RESPONSE_HEADERS.length);

  private fixedRole: i32 = -1;
  readonly labels: Labels;
  private peers: PeerCache = new PeerCache();
  private httpSeries: SeriesCache;
  private tcpSeries: SeriesCache;
  private parts: LabelParts = new LabelParts();
  private attributes: LogAttributes = new LogAttributes();
  private outboundReader: AttributeReader | null = null;
  private inboundReader: AttributeReader | null = null;
  /** Custom span tag values known at configure time (literal, environment, node metadata). */
  private tagValues: string[];
  private invalidPeerMetadataId: i64;
  private untrustedPeerMetadataId: i64;

  constructor(
    readonly root: RootContext,
    readonly config: PluginConfig,
    readonly local: LocalIdentity,
    rootId: string | null,
    tagValues: string[],
  ) {
    // Fields first (AssemblyScript wants every field set before `this` is used), then the
    // fixed label values interned.
    this.httpSeries = new SeriesCache(config.httpPlan, config.maxSeries);
    this.tcpSeries = new SeriesCache(config.tcpPlan, config.maxSeries);
    this.tagValues = tagValues;
    // Each table holds at most as many values as there may be series, plus the fixed ones.
    this.labels = new Labels(local, config.maxSeries + 64, max(config.httpPlan.expressions.length, config.tcpPlan.expressions.length));
    const tracing = config.tracing;
    let settings: TraceSettings | null = null;
    if (tracing.enabled) {
      settings = new TraceSettings(tracing);
      const seed = new ArrayBuffer(8);
      randomBytes(seed);
      settings.random = new SplitMix64(load<u64>(changetype<usize>(seed)));
      settings.invalidCounterId = defineMetric(MetricType.Counter, "mesh_telemetry_trace_headers_invalid_total");
    }
    this.tracing = settings;
    const exports = tracing.zipkin.isOn() || tracing.otlp.isOn();
    this.spans = settings !== null && exports ? new SpanReporter(root, tracing, local) : null;
    this.invalidPeerMetadataId = defineMetric(MetricType.Counter, "mesh_telemetry_peer_metadata_invalid_total");
    this.untrustedPeerMetadataId = defineMetric(MetricType.Counter, "mesh_telemetry_peer_metadata_untrusted_total");

    // Istio's Wasm-era root ids fix the direction the way its stats filter did.
    let mode = config.reporter;
    if (mode == ReporterMode.Auto && rootId !== null) {
      if (rootId == "stats_outbound") mode = ReporterMode.Source;
      else if (rootId == "stats_inbound") mode = ReporterMode.Destination;
    }
    if (mode == ReporterMode.Source) this.fixedRole = Role.Outbound;
    else if (mode == ReporterMode.Destination) this.fixedRole = Role.Inbound;
    else if (mode == ReporterMode.Waypoint) this.fixedRole = Role.Waypoint;

  }

  // ---------------------------------------------------------------------------------------
  // Facts the streams ask for while they run

  /** The route and cluster a request takes: the cluster, and the route only when there is none. */
  readUpstream(role: Role): Upstream {
    return this.labels.readUpstream(role);
  }

  /** The request leaves the mesh (see Labels.isExternal). */
  isExternal(u: Upstream): bool {
    return this.labels.isExternal(u);
  }

  /** The downstream connection is mutual TLS (the caller presented a verified certificate). */
  downstreamIsMtls(): bool {
    return this.labels.downstreamIsMtls();
  }

  /** The upstream connection is mutual TLS: the upstream presented a certificate with a URI SAN. */
  upstreamIsMtls(): bool {
    return this.labels.upstreamIsMtls();
  }

  /** The role from the configured reporter, else from the listener's traffic direction. */
  role(): Role {
    if (this.fixedRole >= 0) return <Role>this.fixedRole;
    return getPropertyI64(P.LISTENER_DIRECTION, 0) == P.DIRECTION_OUTBOUND ? Role.Outbound : Role.Inbound;
  }








  /**
   * The peer an exchange header describes (its id and value as bytes), decoded once per peer.
   * A malformed value yields null (labels become unknown) and is counted; it never fails the
   * request.
   */
  peer(idPtr: usize, idLength: usize, metadataPtr: usize, metadataLength: usize): PeerEntry | null {
    const cached = this.peers.lookup(idPtr, idLength, metadataPtr, metadataLength);
    if (cached !== null) return cached;
    let peer: WorkloadInfo | null = null;
    if (metadataLength <= <usize>MAX_PEER_METADATA_BYTES) {
      const bytes = base64Decode(String.UTF8.decodeUnsafe(metadataPtr, metadataLength));
      if (bytes !== null) {
        const struct = decodeStruct(bytes);
        if (struct !== null) peer = workloadFromStruct(struct);
      }
    }
    if (peer === null) {
      count(this.invalidPeerMetadataId);
      return null;
    }
    const entry = this.peers.put(idPtr, idLength, metadataPtr, metadataLength, peer);
    this.labels.attachPeer(entry);
    return entry;
  }

  countUntrustedPeerMetadata(): void {
    count(this.untrustedPeerMetadataId);
  }

  openConnection(c: ConnectionInfo): void {
    this.open.add(c);
  }

  closeConnection(c: ConnectionInfo): void {
    this.reportConnection(c, true);
    const ids = c.ids;
    if (ids !== null) add(ids[3], 1);
    this.open.delete(c);
  }

  /** The timer's work: open connections' byte deltas, then a span batch. */
  tick(reportConnections: bool, flushSpans: bool): void {
    if (reportConnections) {
      const open = this.open.values();
      for (let i = 0; i < open.length; i++) {
        // Attribute reads in the first report must see the connection, not the root.
        setEffectiveContext(open[i].contextId);
        this.reportConnection(open[i], false);
      }
      setEffectiveContext(this.root.context_id);
    }
    const spans = this.spans;
    if (flushSpans && spans !== null) spans.flush();
  }

  // ---------------------------------------------------------------------------------------
  // Reports

  /** Istio's four request metrics (and custom definitions) for a finished request; its span. */
  reportRequest(info: RequestInfo): void {
    const attrs = this.attributes;
    const inbound = info.role == Role.Inbound;
    this.reader(inbound).read(attrs);
    let cluster: ClusterEntry | null = null;
    let upstream = info.upstream;
    if (inbound) {
      const slots = attrs.slots;
      cluster = this.labels.clusterOfBytes(slots.starts[At.Cluster], slots.kind(At.Cluster) == SlotKind.Missing ? 0 : slots.textLength(At.Cluster));
    } else if (upstream === null) {
      // Answered before the request headers reached this filter.
      upstream = this.readUpstream(info.role);
      info.upstream = upstream;
    }
    const p = this.parts;
    const downstream = info.downstreamPeer;
    const upstreamPeer = info.upstreamPeer;
    this.labels.peerParts(p, info.role, downstream, upstreamPeer, attrs);
    HOST_ATTRIBUTES.downstreamPeer = downstream !== null ? downstream.peer : null;
    HOST_ATTRIBUTES.upstreamPeer = upstreamPeer !== null ? upstreamPeer.peer : null;
    this.labels.serviceParts(p, info.role, inbound ? null : upstream, cluster, info.host);
    p.protocol = info.grpc ? PROTOCOL_GRPC : PROTOCOL_HTTP;
    // Outbound: the :status the response headers carried; a stream without one (reset before
    // its response, a local reply) asks Envoy.
    p.code = inbound ? attrs.code() : info.responseCode > 0 ? info.responseCode : <i32>getPropertyI64(P.RESPONSE_CODE, 0);
    p.flags = this.labels.flagsId(attrs.flags());
    p.grpcStatus = info.grpc ? <i32>getPropertyI64(P.RESPONSE_GRPC_STATUS, 2) : -1;
    const series = this.httpSeries;
    const ids = this.labels.resolve(series, p, HTTP_LABEL_COUNT);
    const requestBytes = attrs.requestBytes();
    const responseBytes = attrs.responseBytes();
    const durationNs = attrs.durationNs();
    // The four standard families, in HTTP_METRIC_NAMES order, then the custom definitions.
    if (ids[0] >= 0) incrementMetric(<u32>ids[0], 1);
    if (ids[1] >= 0) recordMetric(<u32>ids[1], <u64>(durationNs / 1000000));
    if (ids[2] >= 0) recordMetric(<u32>ids[2], <u64>requestBytes);
    if (ids[3] >= 0) recordMetric(<u32>ids[3], <u64>responseBytes);
    const families = series.plan.families;
    for (let f = 4; f < ids.length; f++) {
      if (ids[f] < 0) continue;
      const family = families[f];
      const value = evaluateToInt(family.value!, HOST_ATTRIBUTES);
      if (!value.present) continue;
      // Counters only grow (Envoy refuses a zero or negative increment).
      if (family.type == DefinitionType.Counter) {
        if (value.value > 0) incrementMetric(<u32>ids[f], value.value);
      } else if (value.value >= 0) {
        recordMetric(<u32>ids[f], <u64>value.value);
      }
    }
    const trace = info.trace;
    const spans = this.spans;
    if (trace !== null && spans !== null && trace.span.isSampled()) {
      this.reportSpan(spans, info, upstream, requestBytes, responseBytes, durationNs);
    }
    attrs.release();
  }

  /**
   * Reports a connection's bytes moved since its last report; the first report also counts the
   * open. Until the connection's identity is settled a timer report is skipped and the bytes
   * wait for the next one, so no byte is reported under wrong labels.
   */
  reportConnection(c: ConnectionInfo, closing: bool): void {
    let ids = c.ids;
    if (ids === null) {
      if (!closing && !identityKnown(c)) return;
      ids = this.connectionSeries(c);
      c.ids = ids;
      add(ids[2], 1);
    }
    add(ids[0], c.sent - c.reportedSent);
    add(ids[1], c.received - c.reportedReceived);
    c.reportedSent = c.sent;
    c.reportedReceived = c.received;
  }

  // TCP labels, once per connection: the same derivation as HTTP's, protocol tcp.
  private connectionSeries(c: ConnectionInfo): StaticArray<i64> {
    const attrs = this.attributes;
    const inbound = c.role == Role.Inbound;
    this.reader(inbound).read(attrs);
    const upstream = this.readUpstream(c.role);
    const p = this.parts;
    this.labels.peerParts(p, c.role, null, null, attrs);
    HOST_ATTRIBUTES.downstreamPeer = null;
    HOST_ATTRIBUTES.upstreamPeer = null;
    const cluster = upstream.cluster;
    this.labels.serviceParts(p, c.role, inbound ? null : upstream, inbound && cluster !== null ? this.labels.clusterEntry(cluster) : null, "");
    p.protocol = PROTOCOL_TCP;
    p.code = 0;
    p.flags = this.labels.flagsId(attrs.flags());
    p.grpcStatus = -1;
    const ids = this.labels.resolve(this.tcpSeries, p, TCP_LABEL_COUNT);
    attrs.release();
    return ids;
  }

  // ---------------------------------------------------------------------------------------
  // Labels

  private reader(inbound: bool): AttributeReader {
    if (inbound) {
      let r = this.inboundReader;
      if (r === null) this.inboundReader = r = new AttributeReader(true);
      return r;
    }
    let r = this.outboundReader;
    if (r === null) this.outboundReader = r = new AttributeReader(false);
    return r;
  }














  // ---------------------------------------------------------------------------------------
  // Spans

  // A sampled request's span, from its labels and what its log read, to the span reporter.
  private reportSpan(spans: SpanReporter, info: RequestInfo, upstream: Upstream | null, requestBytes: i64, responseBytes: i64, durationNs: i64): void {
    const p = this.parts;
    const v = this.labels.values(p, HTTP_LABEL_COUNT, HTTP_LABEL_COUNT);
    const role = info.role;
    const t = info.trace!.span;
    const local = this.local.workload;
    const s = new Span();
    s.traceIdHigh = t.traceIdHigh;
    s.traceIdLow = t.traceIdLow;
    s.traceId64 = t.traceId64;
    s.id = t.spanId;
    s.parentId = t.parentSpanId;
    s.debug = t.debug;
    s.kind = role == Role.Outbound ? SpanKind.Client : SpanKind.Server;
    const path = info.path;
    const authority = info.authority;
    const queryAt = path.indexOf("?");
    s.name = authority + (queryAt >= 0 ? path.substring(0, queryAt) : path);
    s.startNs = <u64>getPropertyI64(P.REQUEST_TIME, 0);
    s.durationNs = <u64>durationNs;
    s.traceState = t.traceState;
    s.method = info.method;
    s.path = path;
    s.authority = authority;
    s.serviceName = serviceName(local.canonicalService.length > 0 ? local.canonicalService : local.workloadName, local.namespace);
    const peer = getPropertyString(role == Role.Inbound ? P.SOURCE_ADDRESS : P.UPSTREAM_ADDRESS);
    if (peer !== null) {
      const colon = peer.lastIndexOf(":");
      s.remoteIpv4 = colon > 0 ? peer.substring(0, colon) : peer;
      if (colon > 0) s.remotePort = portOf(peer, colon + 1);
    }
    const code = v[Label.ResponseCode];
    s.statusCode = p.code;
    s.tag("istio.canonical_service", v[role == Role.Outbound ? Label.SourceCanonicalService : Label.DestinationCanonicalService]);
    s.tag("istio.canonical_revision", v[role == Role.Outbound ? Label.SourceCanonicalRevision : Label.DestinationCanonicalRevision]);
    s.tag("istio.namespace", local.namespace.length > 0 ? local.namespace : "unknown");
    s.tag("node_id", this.local.nodeId);
    let cluster: string | null = upstream !== null ? upstream.cluster : null;
    if (role == Role.Inbound) {
      const slots = this.attributes.slots;
      cluster = slots.textLength(At.Cluster) > 0 ? slots.text(At.Cluster) : null;
    }
    s.tag("upstream_cluster", cluster === null ? "-" : cluster);
    s.tag("http.method", info.method);
    s.tag("http.url", "http://" + authority + path);
    s.tag("http.protocol", v[Label.RequestProtocol]);
    s.tag("http.status_code", code);
    s.tag("response_flags", v[Label.ResponseFlags]);
    s.tag("request_size", requestBytes.toString());
    s.tag("response_size", responseBytes.toString());
    if (peer !== null) s.tag("peer.address", peer);
    s.tag("guid:x-request-id", info.trace!.requestId);
    s.tag("component", "proxy");
    if (code.length == 3 && code.charCodeAt(0) == 0x35) s.tag("error", "true");
    this.addCustomTags(s);
    spans.add(s, info.contextId);
  }

  private addCustomTags(s: Span): void {
    const tags = this.config.tracing.customTags;
    for (let i = 0; i < tags.length; i++) {
      const t = tags[i];
      if (t.kind == CustomTagKind.Header) {
        const value = getHeader(MapType.RequestHeaders, String.UTF8.encode(t.source));
        s.tag(t.tag, value !== null ? String.UTF8.decode(value) : t.defaultValue);
      } else {
        // Literal, environment and node metadata values were resolved at configure time.
        s.tag(t.tag, this.tagValues[i]);
      }
    }
  }
}

// Labels depend on the upstream host (its istio.workload label) and, inbound, on the TLS
// handshake: both are settled once bytes have passed either way (TLS is done; server-first
// protocols speak first) and tcp_proxy has picked an upstream host.
function identityKnown(c: ConnectionInfo): bool {
  return c.received + c.sent > 0 && getProperty(P.UPSTREAM_ADDRESS) !== null;
}

function count(id: i64): void {
  if (id >= 0) incrementMetric(<u32>id, 1);
}

function add(id: i64, delta: u64): void {
  if (id >= 0 && delta > 0) incrementMetric(<u32>id, <i64>delta);
}

function serviceName(service: string, namespace: string): string {
  return (service.length > 0 ? service : "unknown") + "." + (namespace.length > 0 ? namespace : "default");
}

// The decimal port after an address's last colon; 0 when it is not one.
function portOf(address: string, start: i32): i32 {
  let port = 0;
  for (let i = start; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c < 0x30 || c > 0x39 || port > 65535) return 0;
    port = port * 10 + (c - 0x30);
  }
  return port;
}
