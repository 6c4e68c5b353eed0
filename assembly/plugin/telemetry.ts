// The reporting service: one per plugin configuration, owned by the root context and handed to
// every stream. Streams give it plain facts (RequestInfo, ConnectionInfo); it turns them into
// Istio's labels, metric updates and spans. It owns every cache the reports use, all bounded:
// peers by exchange id, istiod's cluster metadata by cluster name, interned label values, and
// metric ids by label tuple.
//
// A warm request builds no label text: each value is interned once (sanitized then) and a
// request's label tuple is a short key of small integers (stats/registry.ts). Labels are
// derived as Istio's stats filter derives them (envoy contrib/istio istio_stats.cc): the peer's
// namespace from its certificate's SPIFFE id first, then its metadata; destination_service*
// from special routes and clusters, then istiod's cluster metadata, then the Host header
// (outbound) or the local service (inbound).
import { RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import {
  defineMetric, getHeader, getProperty, getPropertyI64, getPropertyString, incrementMetric, MapType, MetricType, randomBytes, recordMetric,
  setEffectiveContext,
} from "../sdk/host";
import { PluginConfig, ReporterMode } from "../config/config";
import { CustomTagKind } from "../config/tracing";
import { DefinitionType } from "../stats/plan";
import { evaluateToInt, evaluateToString } from "../expr/ast";
import { base64Decode } from "../peer/base64";
import { copyBytes, PeerCache, PeerEntry } from "../peer/cache";
import { decodeStruct } from "../peer/struct";
import { spiffeNamespace, WorkloadInfo, workloadFromEndpointLabel, workloadFromStruct } from "../peer/workload";
import { Interner } from "../stats/intern";
import { HTTP_LABEL_COUNT, Label, TCP_LABEL_COUNT, UNKNOWN } from "../stats/labels";
import { SeriesCache, SeriesKey } from "../stats/registry";
import { responseFlagsString } from "../stats/flags";
import { SplitMix64 } from "../trace/context";
import { Span, SpanKind } from "../trace/span";
import { At, AttributeReader, LogAttributes } from "./attributes";
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
/** Most clusters whose istiod metadata is cached; cleared when full. */
const MAX_CLUSTERS = 1024;
/** istiod's cluster metadata is read again after this many uses, so a CDS update shows up. */
const CLUSTER_REFRESH_AFTER = 4096;

// Label values the key carries as small numbers rather than interned text.
const PROTOCOL_HTTP = 0;
const PROTOCOL_GRPC = 1;
const PROTOCOL_TCP = 2;
const POLICY_UNKNOWN = 0;
const POLICY_NONE = 1;
const POLICY_MUTUAL_TLS = 2;
const PROTOCOLS: StaticArray<string> = ["http", "grpc", "tcp"];
const POLICIES: StaticArray<string> = [UNKNOWN, "none", "mutual_tls"];
const REPORTERS: StaticArray<string> = ["source", "destination", "waypoint"];

// The six labels of a workload that come from its identity alone (namespace and principal are
// separate: they may come from the certificate instead).
class WorkloadLabels {
  constructor(
    readonly workload: string,
    readonly app: string,
    readonly version: string,
    readonly canonicalService: string,
    readonly canonicalRevision: string,
    readonly cluster: string,
  ) {}
}

// istiod's metadata of one cluster, as interned ids (-1: not given).
class ClusterEntry {
  /** BlackHoleCluster and the passthrough clusters name the service themselves. */
  special: bool = false;
  external: bool = false;
  nameId: i32 = -1;
  hostId: i32 = -1;
  namespaceId: i32 = -1;
  uses: i32 = 0;
}

// The TLS facts of a downstream connection: the same for every request on it.
class ConnectionTls {
  mtls: bool = false;
  peerPrincipal: i32 = 0;
  localPrincipal: i32 = 0;
}

// Connections' TLS facts by connection id, direct-mapped (ids grow one by one).
const TLS_SLOTS = 1024;
class TlsTable {
  ids: StaticArray<i64> = new StaticArray<i64>(TLS_SLOTS).fill(-1);
  mtls: StaticArray<u8> = new StaticArray<u8>(TLS_SLOTS);
  peer: StaticArray<i32> = new StaticArray<i32>(TLS_SLOTS);
  local: StaticArray<i32> = new StaticArray<i32>(TLS_SLOTS);
  /** The answer of the last lookup (the VM runs one request at a time). */
  current: ConnectionTls = new ConnectionTls();
}

// One report's label values as ids, reused from report to report (the VM runs one at a time).
class LabelParts {
  role: Role = Role.Inbound;
  sourceWorkload: i32 = 0;
  sourceNamespace: i32 = 0;
  sourcePrincipal: i32 = 0;
  destinationWorkload: i32 = 0;
  destinationNamespace: i32 = 0;
  destinationPrincipal: i32 = 0;
  serviceHost: i32 = 0;
  serviceName: i32 = 0;
  serviceNamespace: i32 = 0;
  protocol: i32 = PROTOCOL_HTTP;
  flags: i32 = 0;
  policy: i32 = POLICY_UNKNOWN;
  code: i32 = 0;
  /** gRPC status, or -1 for "" (not gRPC). */
  grpcStatus: i32 = -1;
  custom: StaticArray<i32> = new StaticArray<i32>(0);
}

export class Telemetry {
  readonly tracing: TraceSettings | null;
  readonly spans: SpanReporter | null;
  /** Connections still open, reported on every tick. */
  readonly open: Set<ConnectionInfo> = new Set();
  /** Header snapshots the streams reuse: the VM runs one callback at a time. */
  readonly requestHeaders: HeaderSnapshot = new HeaderSnapshot(REQUEST_HEADERS.length);
  readonly responseHeaders: HeaderSnapshot = new HeaderSnapshot(RESPONSE_HEADERS.length);

  private fixedRole: i32 = -1;
  private strings: Interner;
  private workloadIds: Map<string, i32> = new Map();
  private workloads: WorkloadLabels[] = [];
  private unknownWorkload: i32 = 0;
  private unknown: i32 = 0;
  private localWorkload: i32 = 0;
  private localNamespace: i32 = 0;
  private localService: i32 = 0;
  private flagIds: Map<u64, i32> = new Map();
  private spiffeNamespaces: Map<i32, i32> = new Map();
  private endpointIds: Map<string, i32> = new Map();
  private peers: PeerCache = new PeerCache();
  private tls: TlsTable = new TlsTable();
  // This proxy's own certificate SAN towards upstreams, read again every CLUSTER_REFRESH_AFTER uses.
  private upstreamLocalPrincipal: i32 = -1;
  private upstreamLocalUses: i32 = 0;
  private clusters: Map<string, ClusterEntry> = new Map();
  private lastClusterBytes: ArrayBuffer = new ArrayBuffer(0);
  private lastClusterNameBytes: ArrayBuffer = new ArrayBuffer(0);
  private lastClusterName: string = "";
  private lastCluster: ClusterEntry | null = null;
  private httpSeries: SeriesCache;
  private tcpSeries: SeriesCache;
  private key: SeriesKey;
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
    this.key = new SeriesKey(16 + max(config.httpPlan.expressions.length, config.tcpPlan.expressions.length));
    this.tagValues = tagValues;
    // Each table holds at most as many values as there may be series, plus the fixed ones.
    this.strings = new Interner(config.maxSeries + 64);
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

    this.unknown = this.strings.id(UNKNOWN);
    this.unknownWorkload = this.workloadId(null);
    const w = local.workload;
    this.localWorkload = this.workloadId(w);
    this.localNamespace = this.strings.id(orUnknown(w.namespace));
    this.localService = this.strings.id(orUnknown(w.canonicalService));
  }

  // ---------------------------------------------------------------------------------------
  // Facts the streams ask for while they run

  /** The role from the configured reporter, else from the listener's traffic direction. */
  role(): Role {
    if (this.fixedRole >= 0) return <Role>this.fixedRole;
    return getPropertyI64(P.LISTENER_DIRECTION, 0) == P.DIRECTION_OUTBOUND ? Role.Outbound : Role.Inbound;
  }

  /** The route and cluster a request takes: the cluster, and the route only when there is none. */
  readUpstream(role: Role): Upstream {
    const u = new Upstream();
    u.cluster = this.clusterName();
    if (u.cluster === null && role != Role.Inbound) u.route = getPropertyString(P.ROUTE_NAME);
    return u;
  }

  // xds.cluster_name as text, decoded only when it differs from the last one read (a sidecar's
  // requests mostly go to few clusters in a row).
  private clusterName(): string | null {
    const bytes = getProperty(P.CLUSTER_NAME);
    if (bytes === null) return null;
    const last = this.lastClusterNameBytes;
    const n = bytes.byteLength;
    if (last.byteLength == n && memory.compare(changetype<usize>(last), changetype<usize>(bytes), n) == 0) return this.lastClusterName;
    const name = String.UTF8.decode(bytes);
    this.lastClusterNameBytes = bytes;
    this.lastClusterName = name;
    return name;
  }

  /**
   * The request leaves the mesh: route allow_any, PassthroughCluster and the like, or a cluster
   * istiod marks `istio.external` (a MESH_EXTERNAL ServiceEntry).
   */
  isExternal(u: Upstream): bool {
    const route = u.route;
    if (route !== null && route == "allow_any") return true;
    const cluster = u.cluster;
    if (cluster === null) return false;
    if (isPassthroughOrBlackhole(cluster)) return true;
    return this.clusterEntry(cluster).external;
  }

  /** The downstream connection is mutual TLS (the caller presented a verified certificate). */
  downstreamIsMtls(): bool {
    return this.connectionTls(getPropertyI64(P.CONNECTION_ID, -1)).mtls;
  }

  // mTLS and both principals, read once per downstream connection (connection.id) instead of on
  // every request. A direct-mapped table allocated once: a new connection allocates nothing
  // (a flood of short connections must not fragment the heap) and evicts the one in its slot.
  private connectionTls(id: i64): ConnectionTls {
    const t = this.tls;
    const slot = <i32>(id & (TLS_SLOTS - 1));
    if (id >= 0 && t.ids[slot] == id) {
      t.current.mtls = t.mtls[slot] != 0;
      t.current.peerPrincipal = t.peer[slot];
      t.current.localPrincipal = t.local[slot];
      return t.current;
    }
    const c = t.current;
    const mtls = getProperty(P.CONNECTION_MTLS);
    c.mtls = mtls !== null && mtls.byteLength == 1 && load<u8>(changetype<usize>(mtls)) != 0;
    c.peerPrincipal = this.principalOf(getProperty(P.CONNECTION_PEER_SAN));
    c.localPrincipal = this.principalOf(getProperty(P.CONNECTION_LOCAL_SAN));
    if (id >= 0) {
      t.ids[slot] = id;
      t.mtls[slot] = c.mtls ? 1 : 0;
      t.peer[slot] = c.peerPrincipal;
      t.local[slot] = c.localPrincipal;
    }
    return c;
  }

  private principalOf(san: ArrayBuffer | null): i32 {
    return san === null ? this.unknown : this.principalId(changetype<usize>(san), san.byteLength);
  }

  /** The upstream connection is mutual TLS: the upstream presented a certificate with a URI SAN. */
  upstreamIsMtls(): bool {
    const san = getProperty(P.UPSTREAM_PEER_SAN);
    return san !== null && san.byteLength > 0;
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
    entry.labels = this.workloadId(peer);
    entry.namespace = this.strings.id(orUnknown(peer.namespace));
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
      cluster = this.clusterOfBytes(slots.starts[At.Cluster], slots.kind(At.Cluster) == SlotKind.Missing ? 0 : slots.textLength(At.Cluster));
    } else if (upstream === null) {
      // Answered before the request headers reached this filter.
      upstream = this.readUpstream(info.role);
      info.upstream = upstream;
    }
    const p = this.parts;
    const downstream = info.downstreamPeer;
    const upstreamPeer = info.upstreamPeer;
    this.peerParts(p, info.role, downstream, upstreamPeer, attrs);
    HOST_ATTRIBUTES.downstreamPeer = downstream !== null ? downstream.peer : null;
    HOST_ATTRIBUTES.upstreamPeer = upstreamPeer !== null ? upstreamPeer.peer : null;
    this.serviceParts(p, info.role, inbound ? null : upstream, cluster, info.host);
    p.protocol = info.grpc ? PROTOCOL_GRPC : PROTOCOL_HTTP;
    // Outbound: the :status the response headers carried; a stream without one (reset before
    // its response, a local reply) asks Envoy.
    p.code = inbound ? attrs.code() : info.responseCode > 0 ? info.responseCode : <i32>getPropertyI64(P.RESPONSE_CODE, 0);
    p.flags = this.flagsId(attrs.flags());
    p.grpcStatus = info.grpc ? <i32>getPropertyI64(P.RESPONSE_GRPC_STATUS, 2) : -1;
    const series = this.httpSeries;
    const ids = this.resolve(series, p, HTTP_LABEL_COUNT);
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
    this.peerParts(p, c.role, null, null, attrs);
    HOST_ATTRIBUTES.downstreamPeer = null;
    HOST_ATTRIBUTES.upstreamPeer = null;
    const cluster = upstream.cluster;
    this.serviceParts(p, c.role, inbound ? null : upstream, inbound && cluster !== null ? this.clusterEntry(cluster) : null, "");
    p.protocol = PROTOCOL_TCP;
    p.code = 0;
    p.flags = this.flagsId(attrs.flags());
    p.grpcStatus = -1;
    const ids = this.resolve(this.tcpSeries, p, TCP_LABEL_COUNT);
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

  // Both workloads, both principals and the security policy.
  private peerParts(p: LabelParts, role: Role, downstream: PeerEntry | null, upstream: PeerEntry | null, attrs: LogAttributes): void {
    p.role = role;
    if (role == Role.Outbound) {
      p.sourceWorkload = this.localWorkload;
      p.sourceNamespace = this.localNamespace;
    } else if (downstream !== null) {
      p.sourceWorkload = downstream.labels;
      p.sourceNamespace = downstream.namespace;
    } else {
      p.sourceWorkload = this.unknownWorkload;
      p.sourceNamespace = this.unknown;
    }
    if (role == Role.Inbound) {
      const tls = this.connectionTls(attrs.connectionId());
      p.destinationWorkload = this.localWorkload;
      p.destinationNamespace = this.localNamespace;
      p.sourcePrincipal = tls.peerPrincipal;
      p.destinationPrincipal = tls.localPrincipal;
      p.policy = tls.mtls ? POLICY_MUTUAL_TLS : POLICY_NONE;
      // As Istio: the peer's namespace from its certificate when it has a SPIFFE id.
      const ns = this.spiffeNamespaceId(tls.peerPrincipal);
      if (ns >= 0) p.sourceNamespace = ns;
    } else {
      if (upstream !== null) {
        p.destinationWorkload = upstream.labels;
        p.destinationNamespace = upstream.namespace;
      } else {
        this.endpointParts(p);
      }
      const peerPrincipal = this.principalOf(getProperty(P.UPSTREAM_PEER_SAN));
      p.destinationPrincipal = peerPrincipal;
      p.sourcePrincipal = peerPrincipal == this.unknown ? this.unknown : this.upstreamLocal();
      p.policy = POLICY_UNKNOWN;
      const ns = this.spiffeNamespaceId(peerPrincipal);
      if (ns >= 0) p.destinationNamespace = ns;
    }
  }

  // This proxy's SAN on its upstream TLS connections: its own workload certificate, the same on
  // every connection, so it is read once and again every CLUSTER_REFRESH_AFTER uses (a
  // rotated certificate keeps its SPIFFE id). Read only when the upstream presented one.
  private upstreamLocal(): i32 {
    if (this.upstreamLocalPrincipal < 0 || ++this.upstreamLocalUses >= CLUSTER_REFRESH_AFTER) {
      this.upstreamLocalPrincipal = this.principalOf(getProperty(P.UPSTREAM_LOCAL_SAN));
      this.upstreamLocalUses = 0;
    }
    return this.upstreamLocalPrincipal;
  }

  // The upstream endpoint's `istio.workload` label, for an upstream that did not exchange metadata.
  private endpointParts(p: LabelParts): void {
    p.destinationWorkload = this.unknownWorkload;
    p.destinationNamespace = this.unknown;
    const label = getPropertyString(P.UPSTREAM_HOST_WORKLOAD);
    if (label === null) return;
    if (this.endpointIds.has(label)) {
      const id = this.endpointIds.get(label);
      p.destinationWorkload = id >> 16;
      p.destinationNamespace = id & 0xffff;
      return;
    }
    const w = workloadFromEndpointLabel(label);
    if (w === null) return;
    const workload = this.workloadId(w);
    const namespace = this.strings.id(orUnknown(w.namespace));
    if (workload < 0 || namespace < 0 || workload > 0x7fff || namespace > 0xffff) {
      p.destinationWorkload = -1;
      return;
    }
    if (this.endpointIds.size >= MAX_CLUSTERS) this.endpointIds.clear();
    this.endpointIds.set(label, (workload << 16) | namespace);
    p.destinationWorkload = workload;
    p.destinationNamespace = namespace;
  }

  // destination_service{,_name,_namespace}: special routes and clusters first, then istiod's
  // cluster metadata, then the Host header (outbound) or the local service (inbound). Inbound
  // passes the cluster entry it read at log; outbound passes its route and cluster.
  private serviceParts(p: LabelParts, role: Role, upstream: Upstream | null, inboundCluster: ClusterEntry | null, hostHeader: string): void {
    const inbound = role == Role.Inbound;
    let host = hostHeader.length > 0 ? this.strings.id(hostHeader) : inbound ? this.localService : this.unknown;
    let name = host;
    let namespace = inbound ? this.localNamespace : p.destinationNamespace;
    let entry = inboundCluster;
    if (upstream !== null) {
      const route = upstream.route;
      const cluster = upstream.cluster;
      if (route !== null && route == "block_all") {
        name = this.strings.id("BlackHoleCluster");
      } else if (route !== null && route == "allow_any") {
        name = this.strings.id("PassthroughCluster");
      } else if (cluster !== null) {
        entry = this.clusterEntry(cluster);
      }
    }
    if (entry !== null) {
      if (entry.special) {
        name = entry.nameId;
      } else if (entry.nameId >= 0) {
        name = entry.nameId;
        if (entry.hostId >= 0) host = entry.hostId;
        if (entry.namespaceId >= 0) namespace = entry.namespaceId;
      }
    }
    p.serviceHost = host;
    p.serviceName = name;
    p.serviceNamespace = namespace;
  }

  private principalId(ptr: usize, length: u32): i32 {
    return length == 0 ? this.unknown : this.strings.idOfBytes(ptr, length);
  }

  // The namespace id in a principal's SPIFFE id, -1 when it has none; worked out once per principal.
  private spiffeNamespaceId(principal: i32): i32 {
    if (principal < 0 || principal == this.unknown) return -1;
    if (this.spiffeNamespaces.has(principal)) return this.spiffeNamespaces.get(principal);
    const ns = spiffeNamespace(this.strings.value(principal));
    const id = ns.length > 0 ? this.strings.id(ns) : -1;
    this.spiffeNamespaces.set(principal, id);
    return id;
  }

  private flagsId(flags: u64): i32 {
    if (this.flagIds.has(flags)) return this.flagIds.get(flags);
    const id = this.strings.id(responseFlagsString(<i64>flags));
    if (id >= 0 && this.flagIds.size < 1024) this.flagIds.set(flags, id);
    return id;
  }

  // Interns a workload's six identity labels as one id; null is the unknown workload.
  private workloadId(w: WorkloadInfo | null): i32 {
    const labels =
      w === null
        ? new WorkloadLabels(UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, "latest", UNKNOWN)
        : new WorkloadLabels(
            orUnknown(w.workloadName),
            orUnknown(w.app),
            orUnknown(w.version),
            w.canonicalService.length > 0 ? w.canonicalService : orUnknown(w.workloadName),
            w.canonicalRevision.length > 0 ? w.canonicalRevision : "latest",
            orUnknown(w.clusterId),
          );
    const key = labels.workload + "\u0001" + labels.app + "\u0001" + labels.version + "\u0001" + labels.canonicalService + "\u0001" + labels.canonicalRevision + "\u0001" + labels.cluster;
    if (this.workloadIds.has(key)) return this.workloadIds.get(key);
    if (this.workloads.length >= this.strings.capacity) return -1;
    const id = this.workloads.length;
    this.workloads.push(
      new WorkloadLabels(
        this.sanitized(labels.workload), this.sanitized(labels.app), this.sanitized(labels.version),
        this.sanitized(labels.canonicalService), this.sanitized(labels.canonicalRevision), this.sanitized(labels.cluster),
      ),
    );
    this.workloadIds.set(key, id);
    return id;
  }

  private sanitized(raw: string): string {
    const id = this.strings.id(raw);
    return id >= 0 ? this.strings.value(id) : "overflow";
  }

  // istiod's metadata of a cluster (filter_metadata.istio: services[0] and external), read once
  // per cluster name and again every CLUSTER_REFRESH_AFTER uses.
  private clusterEntry(cluster: string): ClusterEntry {
    if (this.clusters.has(cluster)) {
      const cached = this.clusters.get(cluster);
      if (++cached.uses < CLUSTER_REFRESH_AFTER) return cached;
    }
    const e = new ClusterEntry();
    if (isPassthroughOrBlackhole(cluster)) {
      e.special = true;
      e.nameId = this.strings.id(cluster);
    } else {
      const name = getPropertyString(P.CLUSTER_SERVICE_NAME);
      if (name !== null && name.length > 0) {
        e.nameId = this.strings.id(name);
        const host = getPropertyString(P.CLUSTER_SERVICE_HOST);
        if (host !== null && host.length > 0) e.hostId = this.strings.id(host);
        const namespace = getPropertyString(P.CLUSTER_SERVICE_NAMESPACE);
        if (namespace !== null && namespace.length > 0) e.namespaceId = this.strings.id(namespace);
      }
      e.external = getProperty(P.CLUSTER_EXTERNAL) !== null;
    }
    if (this.clusters.size >= MAX_CLUSTERS) this.clusters.clear();
    this.clusters.set(cluster, e);
    this.lastCluster = null;
    return e;
  }

  // The cluster entry for a cluster name given as bytes (inbound, from the log attributes),
  // with the last one remembered: most requests of a sidecar's inbound use one cluster.
  private clusterOfBytes(ptr: usize, length: u32): ClusterEntry | null {
    if (length == 0) return null;
    const last = this.lastCluster;
    const bytes = this.lastClusterBytes;
    if (last !== null && <u32>bytes.byteLength == length && memory.compare(changetype<usize>(bytes), ptr, length) == 0 && ++last.uses < CLUSTER_REFRESH_AFTER) {
      return last;
    }
    const entry = this.clusterEntry(String.UTF8.decodeUnsafe(ptr, length));
    this.lastCluster = entry;
    this.lastClusterBytes = copyBytes(ptr, length);
    return entry;
  }

  // The metric ids of a report's label tuple: found by its key of ids, or defined from its text.
  private resolve(series: SeriesCache, p: LabelParts, standardCount: i32): StaticArray<i64> {
    const plan = series.plan;
    const expressions = plan.expressions;
    if (p.custom.length != expressions.length) p.custom = new StaticArray<i32>(expressions.length);
    for (let i = 0; i < expressions.length; i++) {
      const value = evaluateToString(expressions[i], HOST_ATTRIBUTES);
      p.custom[i] = this.strings.id(value === null ? UNKNOWN : value);
    }
    const k = this.key;
    k.reset();
    k.add(p.role);
    k.add(p.sourceWorkload);
    k.add(p.sourceNamespace);
    k.add(p.sourcePrincipal);
    k.add(p.destinationWorkload);
    k.add(p.destinationNamespace);
    k.add(p.destinationPrincipal);
    k.add(p.serviceHost);
    k.add(p.serviceName);
    k.add(p.serviceNamespace);
    k.add(p.protocol);
    k.add(p.flags);
    k.add(p.policy);
    k.add(p.code);
    k.add(p.grpcStatus + 1);
    for (let i = 0; i < p.custom.length; i++) k.add(p.custom[i]);
    if (k.overflow) return series.overflow(plan.slotCount);
    const key = k.text();
    const ids = series.get(key);
    if (ids !== null) return ids;
    return series.add(key, this.values(p, standardCount, plan.slotCount));
  }

  // A tuple's label values as text, in Label order, then the custom dimensions.
  private values(p: LabelParts, standardCount: i32, slotCount: i32): StaticArray<string> {
    const v = new StaticArray<string>(max(slotCount, HTTP_LABEL_COUNT));
    const s = this.strings;
    v[Label.Reporter] = REPORTERS[<i32>p.role];
    const src = this.workloads[p.sourceWorkload];
    v[Label.SourceWorkload] = src.workload;
    v[Label.SourceWorkloadNamespace] = s.value(p.sourceNamespace);
    v[Label.SourcePrincipal] = s.value(p.sourcePrincipal);
    v[Label.SourceApp] = src.app;
    v[Label.SourceVersion] = src.version;
    v[Label.SourceCanonicalService] = src.canonicalService;
    v[Label.SourceCanonicalRevision] = src.canonicalRevision;
    v[Label.SourceCluster] = src.cluster;
    const dst = this.workloads[p.destinationWorkload];
    v[Label.DestinationWorkload] = dst.workload;
    v[Label.DestinationWorkloadNamespace] = s.value(p.destinationNamespace);
    v[Label.DestinationPrincipal] = s.value(p.destinationPrincipal);
    v[Label.DestinationApp] = dst.app;
    v[Label.DestinationVersion] = dst.version;
    v[Label.DestinationService] = s.value(p.serviceHost);
    v[Label.DestinationServiceName] = s.value(p.serviceName);
    v[Label.DestinationServiceNamespace] = s.value(p.serviceNamespace);
    v[Label.DestinationCanonicalService] = dst.canonicalService;
    v[Label.DestinationCanonicalRevision] = dst.canonicalRevision;
    v[Label.DestinationCluster] = dst.cluster;
    v[Label.RequestProtocol] = PROTOCOLS[p.protocol];
    v[Label.ResponseFlags] = s.value(p.flags);
    v[Label.ConnectionSecurityPolicy] = POLICIES[p.policy];
    v[Label.ResponseCode] = p.code.toString();
    v[Label.GrpcResponseStatus] = p.grpcStatus < 0 ? "" : p.grpcStatus.toString();
    for (let i = 0; i < p.custom.length; i++) v[standardCount + i] = s.value(p.custom[i]);
    if (v.length == slotCount) return v;
    const out = new StaticArray<string>(slotCount);
    for (let i = 0; i < slotCount; i++) out[i] = v[i];
    return out;
  }

  // ---------------------------------------------------------------------------------------
  // Spans

  // A sampled request's span, from its labels and what its log read, to the span reporter.
  private reportSpan(spans: SpanReporter, info: RequestInfo, upstream: Upstream | null, requestBytes: i64, responseBytes: i64, durationNs: i64): void {
    const p = this.parts;
    const v = this.values(p, HTTP_LABEL_COUNT, HTTP_LABEL_COUNT);
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

function orUnknown(s: string | null): string {
  return s === null || s.length == 0 ? UNKNOWN : s;
}

function isPassthroughOrBlackhole(cluster: string): bool {
  return (
    cluster == "BlackHoleCluster" ||
    cluster == "PassthroughCluster" ||
    cluster == "InboundPassthroughCluster" ||
    cluster == "InboundPassthroughClusterIpv4" ||
    cluster == "InboundPassthroughClusterIpv6"
  );
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
