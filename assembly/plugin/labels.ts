// Istio's labels as small integers. Each value is interned once (sanitized then), a workload's
// six identity labels as one id, and a report's label tuple (LabelParts) becomes a short key of
// ids for the metric-id cache (stats/registry.ts): a warm request builds no label text. The
// tables here also hold what the labels are derived from and is the same request after
// request: istiod's cluster metadata by cluster name, a downstream connection's TLS facts by
// connection id, this proxy's upstream SAN. All bounded.
//
// Labels are derived as Istio's stats filter derives them (envoy contrib/istio istio_stats.cc):
// the peer's namespace from its certificate's SPIFFE id first, then its metadata;
// destination_service* from special routes and clusters, then istiod's cluster metadata, then
// the Host header (outbound) or the local service (inbound).
import { getProperty, getPropertyI64, getPropertyString } from "../sdk/host";
import { evaluateToString } from "../expr/ast";
import { copyBytes, PeerEntry } from "../peer/cache";
import { spiffeNamespace, WorkloadInfo, workloadFromEndpointLabel } from "../peer/workload";
import { Interner } from "../stats/intern";
import { HTTP_LABEL_COUNT, Label, UNKNOWN } from "../stats/labels";
import { SeriesCache, SeriesKey } from "../stats/registry";
import { responseFlagsString } from "../stats/flags";
import { LogAttributes } from "./attributes";
import { HOST_ATTRIBUTES } from "./expressions";
import { LocalIdentity } from "./identity";
import { Role, Upstream } from "./info";
import * as P from "./properties";

/** Most clusters (and endpoint labels) whose metadata is cached; cleared when full. */
const MAX_CLUSTERS = 1024;
/** istiod's cluster metadata is read again after this many uses, so a CDS update shows up. */
const CLUSTER_REFRESH_AFTER = 4096;

// Label values the key carries as small numbers rather than interned text.
export const PROTOCOL_HTTP = 0;
export const PROTOCOL_GRPC = 1;
export const PROTOCOL_TCP = 2;
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
export class ClusterEntry {
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
export class LabelParts {
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

export class Labels {
  private strings: Interner;
  private workloadIds: Map<string, i32> = new Map();
  private workloads: WorkloadLabels[] = [];
  private unknownWorkload: i32 = 0;
  private unknown: i32 = 0;
  private localWorkload: i32 = 0;
  private localNamespace: i32 = 0;
  private localService: i32 = 0;
  // destination_service of the block_all and allow_any routes, interned once.
  private blackHole: i32 = 0;
  private passthrough: i32 = 0;
  private flagIds: Map<u64, i32> = new Map();
  private spiffeNamespaces: Map<i32, i32> = new Map();
  private endpointIds: Map<string, i32> = new Map();
  private tls: TlsTable = new TlsTable();
  // This proxy's own certificate SAN towards upstreams, read again every CLUSTER_REFRESH_AFTER uses.
  private upstreamLocalPrincipal: i32 = -1;
  private upstreamLocalUses: i32 = 0;
  private clusters: Map<string, ClusterEntry> = new Map();
  // The last cluster seen, as Envoy's bytes, as text and (once looked up) its entry: a sidecar's
  // requests mostly go to few clusters in a row, so most need no decode and no map lookup.
  private lastClusterBytes: ArrayBuffer = new ArrayBuffer(0);
  private lastClusterName: string = "";
  private lastCluster: ClusterEntry | null = null;
  private key: SeriesKey;

  /** `capacity`: most distinct values (and workloads) interned; `customDimensions`: most expressions of a plan. */
  constructor(local: LocalIdentity, capacity: i32, customDimensions: i32) {
    this.strings = new Interner(capacity);
    this.key = new SeriesKey(16 + customDimensions);
    this.unknown = this.strings.id(UNKNOWN);
    this.unknownWorkload = this.workloadId(null);
    const w = local.workload;
    this.localWorkload = this.workloadId(w);
    this.localNamespace = this.strings.id(orUnknown(w.namespace));
    this.localService = this.strings.id(orUnknown(w.canonicalService));
    this.blackHole = this.strings.id("BlackHoleCluster");
    this.passthrough = this.strings.id("PassthroughCluster");
  }

  /** Interns a decoded peer's labels into its cache entry, once. */
  attachPeer(entry: PeerEntry): void {
    entry.labels = this.workloadId(entry.peer);
    entry.namespace = this.strings.id(orUnknown(entry.peer.namespace));
  }

  // xds.cluster_name as text (outbound, with the request headers).
  private clusterName(): string | null {
    const bytes = getProperty(P.CLUSTER_NAME);
    return bytes === null ? null : this.clusterNameOf(changetype<usize>(bytes), bytes.byteLength);
  }

  // A cluster name given as bytes, decoded only when it differs from the last one.
  private clusterNameOf(ptr: usize, length: u32): string {
    const last = this.lastClusterBytes;
    if (<u32>last.byteLength == length && memory.compare(changetype<usize>(last), ptr, length) == 0) return this.lastClusterName;
    const name = String.UTF8.decodeUnsafe(ptr, length);
    this.lastClusterBytes = copyBytes(ptr, length);
    this.lastClusterName = name;
    this.lastCluster = null;
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
    const entry = this.clusterEntry(cluster);
    return entry.special || entry.external;
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

  // Both workloads, both principals and the security policy.
  peerParts(p: LabelParts, role: Role, downstream: PeerEntry | null, upstream: PeerEntry | null, attrs: LogAttributes): void {
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
  serviceParts(p: LabelParts, role: Role, upstream: Upstream | null, inboundCluster: ClusterEntry | null, hostHeader: string): void {
    const inbound = role == Role.Inbound;
    let host = hostHeader.length > 0 ? this.strings.id(hostHeader) : inbound ? this.localService : this.unknown;
    let name = host;
    let namespace = inbound ? this.localNamespace : p.destinationNamespace;
    let entry = inboundCluster;
    if (upstream !== null) {
      const route = upstream.route;
      const cluster = upstream.cluster;
      if (route !== null && route == "block_all") {
        name = this.blackHole;
      } else if (route !== null && route == "allow_any") {
        name = this.passthrough;
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

  flagsId(flags: u64): i32 {
    if (this.flagIds.has(flags)) return this.flagIds.get(flags);
    const id = this.strings.id(responseFlagsString(<i64>flags));
    if (id >= 0 && this.flagIds.size < 1024) this.flagIds.set(flags, id);
    return id;
  }

  // Interns a workload's six identity labels as one id; null is the unknown workload.
  workloadId(w: WorkloadInfo | null): i32 {
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
  clusterEntry(cluster: string): ClusterEntry {
    // The last cluster's entry, when `cluster` is the text clusterNameOf gave out for it.
    const last = this.lastCluster;
    const isLast = changetype<usize>(cluster) == changetype<usize>(this.lastClusterName);
    if (isLast && last !== null && ++last.uses < CLUSTER_REFRESH_AFTER) return last;
    if (this.clusters.has(cluster)) {
      const cached = this.clusters.get(cluster);
      if (++cached.uses < CLUSTER_REFRESH_AFTER) {
        if (isLast) this.lastCluster = cached;
        return cached;
      }
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
    if (isLast) this.lastCluster = e;
    return e;
  }

  // The cluster entry for a cluster name given as bytes (inbound, from the log attributes).
  clusterOfBytes(ptr: usize, length: u32): ClusterEntry | null {
    return length == 0 ? null : this.clusterEntry(this.clusterNameOf(ptr, length));
  }

  // The metric ids of a report's label tuple: found by its key of ids, or defined from its text.
  resolve(series: SeriesCache, p: LabelParts, standardCount: i32): StaticArray<i64> {
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
  values(p: LabelParts, standardCount: i32, slotCount: i32): StaticArray<string> {
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

  /** The route and cluster a request takes: the cluster, and the route only when there is none. */
  readUpstream(role: Role): Upstream {
    const u = new Upstream();
    u.cluster = this.clusterName();
    if (u.cluster === null && role != Role.Inbound) u.route = getPropertyString(P.ROUTE_NAME);
    return u;
  }
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
