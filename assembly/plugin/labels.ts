// The labels HTTP and TCP metrics share: reporter, both workloads, principals, the security
// policy and destination_service*, derived as Istio derives them. Computed once per request
// (HTTP) or once per connection (TCP).
import { getProperty, getPropertyI64, getPropertyString } from "../sdk/host";
import { ReporterMode } from "../config/config";
import { Label, UNKNOWN } from "../stats/labels";
import { spiffeNamespace, WorkloadInfo, workloadFromEndpointLabel } from "../peer/workload";
import * as P from "./properties";

export const enum Role {
  /** Client sidecar or gateway: reporter=source, local is the source. */
  Outbound,
  /** Server sidecar: reporter=destination, local is the destination. */
  Inbound,
  /** Waypoint: reports for the destination but sits between two peers. */
  Waypoint,
}

/** The role from the configured reporter, else from the listener's traffic direction. */
export function roleOf(mode: ReporterMode): Role {
  if (mode == ReporterMode.Source) return Role.Outbound;
  if (mode == ReporterMode.Destination) return Role.Inbound;
  if (mode == ReporterMode.Waypoint) return Role.Waypoint;
  return getPropertyI64(P.LISTENER_DIRECTION, 0) == P.DIRECTION_OUTBOUND ? Role.Outbound : Role.Inbound;
}

/**
 * Fills every label up to and including connection_security_policy except request_protocol
 * and response_flags. `host` is the Host header for the outbound fallback ("" for none).
 */
export function fillPeerLabels(
  v: StaticArray<string>,
  role: Role,
  local: WorkloadInfo,
  downstreamPeer: WorkloadInfo | null,
  upstreamPeer: WorkloadInfo | null,
  host: string,
  upstream: UpstreamRoute,
): void {
  let source: WorkloadInfo | null = role == Role.Outbound ? local : downstreamPeer;
  let destination: WorkloadInfo | null = role == Role.Inbound ? local : upstreamPeer;
  if (destination === null) destination = endpointWorkload();

  v[Label.Reporter] = role == Role.Outbound ? "source" : role == Role.Inbound ? "destination" : "waypoint";
  fillWorkload(v, true, source);
  fillWorkload(v, false, destination);

  if (role == Role.Inbound) {
    const c = downstreamConnection();
    v[Label.ConnectionSecurityPolicy] = c.mtls ? "mutual_tls" : "none";
    v[Label.SourcePrincipal] = c.peerPrincipal;
    v[Label.DestinationPrincipal] = c.localPrincipal;
  } else {
    v[Label.ConnectionSecurityPolicy] = UNKNOWN;
    v[Label.SourcePrincipal] = orUnknown(getPropertyString(P.UPSTREAM_LOCAL_SAN));
    v[Label.DestinationPrincipal] = orUnknown(getPropertyString(P.UPSTREAM_PEER_SAN));
  }
  // As Istio: the peer's namespace comes from its certificate's SPIFFE id when it has one (a
  // TCP peer without metadata exchange still gets it), else from its metadata.
  const peerNamespaceLabel = role == Role.Outbound ? Label.DestinationWorkloadNamespace : Label.SourceWorkloadNamespace;
  const peerNamespace = spiffeNamespace(v[role == Role.Outbound ? Label.DestinationPrincipal : Label.SourcePrincipal]);
  if (peerNamespace.length > 0) v[peerNamespaceLabel] = peerNamespace;
  fillDestinationService(v, role, local, v[Label.DestinationWorkloadNamespace], host, upstream);
}

/**
 * The route and cluster a request takes, read once per request: an outbound request reads
 * them on its headers (to decide on the exchange) and its labels reuse them.
 */
export class UpstreamRoute {
  /** Null inbound: block_all and allow_any are routes of the outbound listener. */
  route: string | null = null;
  cluster: string | null = null;
}

export function readUpstreamRoute(role: Role): UpstreamRoute {
  const r = new UpstreamRoute();
  if (role != Role.Inbound) r.route = getPropertyString(P.ROUTE_NAME);
  r.cluster = getPropertyString(P.CLUSTER_NAME);
  return r;
}

// destination_service{,_name,_namespace}: special routes and clusters first, then istiod's
// cluster metadata, then the Host header (outbound) or the local service (inbound).
function fillDestinationService(v: StaticArray<string>, role: Role, local: WorkloadInfo, destinationNamespace: string, hostHeader: string, upstream: UpstreamRoute): void {
  let host = hostHeader.length > 0 ? hostHeader : role == Role.Inbound ? orUnknown(local.canonicalService) : UNKNOWN;
  let name = host;
  let namespace = role == Role.Inbound ? orUnknown(local.namespace) : destinationNamespace;
  const route = upstream.route;
  const cluster = upstream.cluster;
  if (route !== null && route == "block_all") {
    name = "BlackHoleCluster";
  } else if (route !== null && route == "allow_any") {
    name = "PassthroughCluster";
  } else if (cluster !== null && isPassthroughOrBlackhole(cluster)) {
    name = cluster;
  } else {
    const service = clusterInfo(cluster);
    const serviceName = service.name;
    if (serviceName !== null && serviceName.length > 0) {
      name = serviceName;
      const serviceHost = service.host;
      if (serviceHost !== null && serviceHost.length > 0) host = serviceHost;
      const serviceNamespace = service.namespace;
      if (serviceNamespace !== null && serviceNamespace.length > 0) namespace = serviceNamespace;
    }
  }
  v[Label.DestinationService] = host;
  v[Label.DestinationServiceName] = name;
  v[Label.DestinationServiceNamespace] = namespace;
}

/** The downstream connection is mutual TLS (the caller presented a verified certificate). */
export function downstreamIsMtls(): bool {
  return downstreamConnection().mtls;
}

// mTLS and both principals are the same for every request on a downstream connection: read
// once per connection, keyed by connection.id (one read instead of three, and the trust check
// and the labels share it). Bounded: cleared when it holds MAX_CACHED entries; a closed
// connection is simply never looked up again (Envoy never reuses a connection id).
class DownstreamConnection {
  mtls: bool = false;
  peerPrincipal: string = UNKNOWN;
  localPrincipal: string = UNKNOWN;
}
const MAX_CACHED = 1024;
const connections = new Map<i64, DownstreamConnection>();

function downstreamConnection(): DownstreamConnection {
  const id = getPropertyI64(P.CONNECTION_ID, -1);
  if (id >= 0 && connections.has(id)) return connections.get(id);
  const c = new DownstreamConnection();
  const mtls = getProperty(P.CONNECTION_MTLS);
  c.mtls = mtls !== null && mtls.byteLength == 1 && load<u8>(changetype<usize>(mtls)) != 0;
  c.peerPrincipal = orUnknown(getPropertyString(P.CONNECTION_PEER_SAN));
  c.localPrincipal = orUnknown(getPropertyString(P.CONNECTION_LOCAL_SAN));
  if (id >= 0) {
    if (connections.size >= MAX_CACHED) connections.clear();
    connections.set(id, c);
  }
  return c;
}

// istiod's metadata of a cluster (filter_metadata.istio: services[0] and external), read once
// per cluster name instead of on every request, and again every REFRESH_AFTER uses so a CDS
// update that changes it shows up. Bounded like the connections.
class ClusterInfo {
  name: string | null = null;
  host: string | null = null;
  namespace: string | null = null;
  external: bool = false;
  uses: i32 = 0;
}
const REFRESH_AFTER = 4096;
const clusters = new Map<string, ClusterInfo>();

function readClusterInfo(): ClusterInfo {
  const c = new ClusterInfo();
  c.name = getPropertyString(P.CLUSTER_SERVICE_NAME);
  if (c.name !== null && c.name!.length > 0) {
    c.host = getPropertyString(P.CLUSTER_SERVICE_HOST);
    c.namespace = getPropertyString(P.CLUSTER_SERVICE_NAMESPACE);
  }
  c.external = getProperty(P.CLUSTER_EXTERNAL) !== null;
  return c;
}

function clusterInfo(cluster: string | null): ClusterInfo {
  if (cluster === null) return readClusterInfo();
  if (clusters.has(cluster)) {
    const cached = clusters.get(cluster);
    if (++cached.uses < REFRESH_AFTER) return cached;
  }
  const c = readClusterInfo();
  if (clusters.size >= MAX_CACHED) clusters.clear();
  clusters.set(cluster, c);
  return c;
}

/** The upstream connection is mutual TLS: the upstream presented a certificate with a URI SAN. */
export function upstreamIsMtls(): bool {
  const san = getProperty(P.UPSTREAM_PEER_SAN);
  return san !== null && san.byteLength > 0;
}

/**
 * The request leaves the mesh: route allow_any, PassthroughCluster and the like, or a cluster
 * istiod marks `istio.external` (a MESH_EXTERNAL ServiceEntry). The route is resolved when the
 * attribute is read, so this works on request headers.
 */
export function upstreamIsExternal(upstream: UpstreamRoute): bool {
  const route = upstream.route;
  if (route !== null && route == "allow_any") return true;
  const cluster = upstream.cluster;
  if (cluster !== null && isPassthroughOrBlackhole(cluster)) return true;
  return clusterInfo(cluster).external;
}

/** The upstream endpoint's `istio.workload` label, for an upstream that did not exchange metadata. */
function endpointWorkload(): WorkloadInfo | null {
  const label = getPropertyString(P.UPSTREAM_HOST_WORKLOAD);
  return label === null ? null : workloadFromEndpointLabel(label);
}

// Writes the workload labels of one side (source_* or destination_*); principals and
// destination_service* are filled separately.
function fillWorkload(v: StaticArray<string>, source: bool, w: WorkloadInfo | null): void {
  const workload = source ? Label.SourceWorkload : Label.DestinationWorkload;
  const namespace = source ? Label.SourceWorkloadNamespace : Label.DestinationWorkloadNamespace;
  const app = source ? Label.SourceApp : Label.DestinationApp;
  const version = source ? Label.SourceVersion : Label.DestinationVersion;
  const service = source ? Label.SourceCanonicalService : Label.DestinationCanonicalService;
  const revision = source ? Label.SourceCanonicalRevision : Label.DestinationCanonicalRevision;
  const cluster = source ? Label.SourceCluster : Label.DestinationCluster;
  if (w === null) {
    v[workload] = UNKNOWN;
    v[namespace] = UNKNOWN;
    v[app] = UNKNOWN;
    v[version] = UNKNOWN;
    v[service] = UNKNOWN;
    v[revision] = "latest";
    v[cluster] = UNKNOWN;
    return;
  }
  v[workload] = orUnknown(w.workloadName);
  v[namespace] = orUnknown(w.namespace);
  v[app] = orUnknown(w.app);
  v[version] = orUnknown(w.version);
  v[service] = w.canonicalService.length > 0 ? w.canonicalService : orUnknown(w.workloadName);
  v[revision] = w.canonicalRevision.length > 0 ? w.canonicalRevision : "latest";
  v[cluster] = orUnknown(w.clusterId);
}

export function orUnknown(s: string | null): string {
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
