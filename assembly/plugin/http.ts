// Per-request HTTP stream context. On the request it learns the direction, takes the
// downstream peer from Istio's metadata-exchange headers (and strips them), and injects this
// proxy's identity upstream on outbound; on the response it does the same for the upstream
// peer; when the stream is logged it computes Istio's labels once and reports the request
// metrics through the cached metric ids.
import { Context, FilterHeadersStatusValues } from "@solo-io/proxy-runtime/assembly/runtime";
import {
  getHeader, getProperty, getPropertyI64, getPropertyString, incrementMetric, MapType, recordMetric,
  removeHeader, replaceHeader,
} from "../sdk/host";
import { ReporterMode } from "../config/config";
import { HTTP_LABEL_COUNT, Label, UNKNOWN } from "../stats/labels";
import { sanitizeLabelValue } from "../stats/names";
import { streamEnded } from "../sdk/memory";
import { responseFlagsString } from "../stats/flags";
import { WorkloadInfo, workloadFromEndpointLabel } from "../peer/workload";
import * as P from "./properties";
import { TelemetryRoot } from "./root";

const PEER_METADATA = String.UTF8.encode("x-envoy-peer-metadata");
const PEER_METADATA_ID = String.UTF8.encode("x-envoy-peer-metadata-id");
const AUTHORITY = String.UTF8.encode(":authority");
const CONTENT_TYPE = String.UTF8.encode("content-type");

const enum Role {
  /** Client sidecar or gateway: reporter=source, local is the source. */
  Outbound,
  /** Server sidecar: reporter=destination, local is the destination. */
  Inbound,
  /** Waypoint: reports for the destination but sits between two peers. */
  Waypoint,
}

export class HttpStream extends Context {
  private role: Role = Role.Inbound;
  private downstreamPeer: WorkloadInfo | null = null;
  private upstreamPeer: WorkloadInfo | null = null;
  private peerAskedForMetadata: bool = false;
  private host: string = "";
  private grpc: bool = false;

  constructor(context_id: u32, readonly root: TelemetryRoot) {
    super(context_id, root);
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.root;
    this.role = roleOf(root.config.reporter);
    const id = getHeader(MapType.RequestHeaders, PEER_METADATA_ID);
    const metadata = getHeader(MapType.RequestHeaders, PEER_METADATA);
    if (metadata !== null) {
      this.peerAskedForMetadata = true;
      if (this.role != Role.Outbound) this.downstreamPeer = root.decodePeer(id, metadata);
      removeHeader(MapType.RequestHeaders, PEER_METADATA);
    }
    if (id !== null) removeHeader(MapType.RequestHeaders, PEER_METADATA_ID);
    if (this.role != Role.Inbound) {
      replaceHeader(MapType.RequestHeaders, PEER_METADATA, root.local.exchangeValue);
      replaceHeader(MapType.RequestHeaders, PEER_METADATA_ID, root.local.exchangeId);
    }
    if (this.role == Role.Outbound && !root.config.disableHostHeaderFallback) {
      const host = getHeader(MapType.RequestHeaders, AUTHORITY);
      if (host !== null) this.host = String.UTF8.decode(host);
    }
    const contentType = getHeader(MapType.RequestHeaders, CONTENT_TYPE);
    this.grpc = contentType !== null && isGrpcContentType(String.UTF8.decode(contentType));
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.root;
    const id = getHeader(MapType.ResponseHeaders, PEER_METADATA_ID);
    const metadata = getHeader(MapType.ResponseHeaders, PEER_METADATA);
    if (metadata !== null) {
      if (this.role != Role.Inbound) this.upstreamPeer = root.decodePeer(id, metadata);
      removeHeader(MapType.ResponseHeaders, PEER_METADATA);
    }
    if (id !== null) removeHeader(MapType.ResponseHeaders, PEER_METADATA_ID);
    // A server answers the exchange only to a client that took part in it, as Istio does.
    if (this.role == Role.Inbound && this.peerAskedForMetadata) {
      replaceHeader(MapType.ResponseHeaders, PEER_METADATA, root.local.exchangeValue);
      replaceHeader(MapType.ResponseHeaders, PEER_METADATA_ID, root.local.exchangeId);
    }
    return FilterHeadersStatusValues.Continue;
  }

  onLog(): void {
    const root = this.root;
    const series = root.httpSeries;
    if (series === null) return;
    const v = new StaticArray<string>(HTTP_LABEL_COUNT);
    this.fillLabels(v);
    for (let i = 0; i < HTTP_LABEL_COUNT; i++) v[i] = sanitizeLabelValue(v[i]);
    const ids = series.resolve(v);
    if (ids[0] >= 0) incrementMetric(<u32>ids[0], 1);
    if (ids[1] >= 0) recordMetric(<u32>ids[1], <u64>(getPropertyI64(P.REQUEST_DURATION, 0) / 1000000));
    if (ids[2] >= 0) recordMetric(<u32>ids[2], <u64>getPropertyI64(P.REQUEST_TOTAL_SIZE, 0));
    if (ids[3] >= 0) recordMetric(<u32>ids[3], <u64>getPropertyI64(P.RESPONSE_TOTAL_SIZE, 0));
  }

  onDelete(): void {
    streamEnded();
  }

  private fillLabels(v: StaticArray<string>): void {
    const local = this.root.local.workload;
    const role = this.role;
    let source: WorkloadInfo | null;
    let destination: WorkloadInfo | null;
    if (role == Role.Outbound) {
      source = local;
      destination = this.upstreamPeer;
    } else if (role == Role.Inbound) {
      source = this.downstreamPeer;
      destination = local;
    } else {
      source = this.downstreamPeer;
      destination = this.upstreamPeer;
    }
    if (destination === null) destination = endpointWorkload();

    v[Label.Reporter] = role == Role.Outbound ? "source" : role == Role.Inbound ? "destination" : "waypoint";
    fillWorkload(v, true, source);
    fillWorkload(v, false, destination);

    if (role == Role.Inbound) {
      const mtls = getProperty(P.CONNECTION_MTLS);
      const isMtls = mtls !== null && mtls.byteLength == 1 && load<u8>(changetype<usize>(mtls)) != 0;
      v[Label.ConnectionSecurityPolicy] = isMtls ? "mutual_tls" : "none";
      v[Label.SourcePrincipal] = orUnknown(getPropertyString(P.CONNECTION_PEER_SAN));
      v[Label.DestinationPrincipal] = orUnknown(getPropertyString(P.CONNECTION_LOCAL_SAN));
    } else {
      v[Label.ConnectionSecurityPolicy] = UNKNOWN;
      v[Label.SourcePrincipal] = orUnknown(getPropertyString(P.UPSTREAM_LOCAL_SAN));
      v[Label.DestinationPrincipal] = orUnknown(getPropertyString(P.UPSTREAM_PEER_SAN));
    }
    this.fillDestinationService(v, destination);

    v[Label.RequestProtocol] = this.grpc ? "grpc" : "http";
    v[Label.ResponseCode] = getPropertyI64(P.RESPONSE_CODE, 0).toString();
    v[Label.ResponseFlags] = responseFlagsString(getPropertyI64(P.RESPONSE_FLAGS, 0));
    v[Label.GrpcResponseStatus] = this.grpc ? getPropertyI64(P.RESPONSE_GRPC_STATUS, 2).toString() : "";
  }

  // destination_service{,_name,_namespace} as Istio derives them: special routes and clusters
  // first, then istiod's cluster metadata, then the Host header (outbound) as the fallback.
  private fillDestinationService(v: StaticArray<string>, destination: WorkloadInfo | null): void {
    let host = this.host.length > 0 ? this.host : this.role == Role.Inbound ? localServiceFallback(this.root.local.workload) : UNKNOWN;
    let name = host;
    let namespace = destination !== null && destination.namespace.length > 0 ? destination.namespace : UNKNOWN;
    if (this.role == Role.Inbound) namespace = orUnknown(this.root.local.workload.namespace);
    const route = getPropertyString(P.ROUTE_NAME);
    const cluster = getPropertyString(P.CLUSTER_NAME);
    if (route !== null && route == "block_all") {
      name = "BlackHoleCluster";
    } else if (route !== null && route == "allow_any") {
      name = "PassthroughCluster";
    } else if (cluster !== null && isPassthroughOrBlackhole(cluster)) {
      name = cluster;
    } else {
      const serviceName = getPropertyString(P.CLUSTER_SERVICE_NAME);
      if (serviceName !== null && serviceName.length > 0) {
        name = serviceName;
        const serviceHost = getPropertyString(P.CLUSTER_SERVICE_HOST);
        if (serviceHost !== null && serviceHost.length > 0) host = serviceHost;
        const serviceNamespace = getPropertyString(P.CLUSTER_SERVICE_NAMESPACE);
        if (serviceNamespace !== null && serviceNamespace.length > 0) namespace = serviceNamespace;
      }
    }
    v[Label.DestinationService] = host;
    v[Label.DestinationServiceName] = name;
    v[Label.DestinationServiceNamespace] = namespace;
  }
}

function roleOf(mode: ReporterMode): Role {
  if (mode == ReporterMode.Source) return Role.Outbound;
  if (mode == ReporterMode.Destination) return Role.Inbound;
  if (mode == ReporterMode.Waypoint) return Role.Waypoint;
  return getPropertyI64(P.LISTENER_DIRECTION, 0) == P.DIRECTION_OUTBOUND ? Role.Outbound : Role.Inbound;
}

/** The upstream endpoint's `istio.workload` label, when the upstream did not exchange metadata. */
function endpointWorkload(): WorkloadInfo | null {
  const label = getPropertyString(P.UPSTREAM_HOST_WORKLOAD);
  return label === null ? null : workloadFromEndpointLabel(label);
}

// Writes the workload labels of one side (source_* or destination_*); the principal and the
// destination_service* labels are filled by the caller.
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

function orUnknown(s: string | null): string {
  return s === null || s.length == 0 ? UNKNOWN : s;
}

function localServiceFallback(local: WorkloadInfo): string {
  return orUnknown(local.canonicalService);
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

function isGrpcContentType(contentType: string): bool {
  return contentType == "application/grpc" || contentType.startsWith("application/grpc+");
}
