// HTTP telemetry of one request. On the request it learns the role, takes the downstream peer
// from Istio's metadata-exchange headers (and strips them), and injects this proxy's identity
// upstream unless inbound; on the response it does the same for the upstream peer; when the
// stream is logged it computes the labels once and reports the request metrics through the
// cached metric ids.
import { getHeader, getHeaderPairs, getPropertyI64, incrementMetric, MapType, recordMetric, removeHeader, replaceHeader } from "../sdk/host";
import { HeaderSnapshot, pickHeaders } from "../sdk/headers";
import { beginTrace, finishTrace, isReported, RequestTrace, SpanFacts } from "./tracing";
import { HTTP_LABEL_COUNT, Label, UNKNOWN } from "../stats/labels";
import { evaluateToInt, evaluateToString } from "../expr/ast";
import { DefinitionType } from "../config/metrics";
import { HOST_ATTRIBUTES } from "./expressions";
import { sanitizeLabelValue } from "../stats/names";
import { responseFlagsString } from "../stats/flags";
import { WorkloadInfo } from "../peer/workload";
import { downstreamIsMtls, fillPeerLabels, readUpstreamRoute, Role, roleOf, UpstreamRoute, upstreamIsExternal, upstreamIsMtls } from "./labels";
import { PeerTrust } from "../config/config";
import * as P from "./properties";
import { TelemetryRoot } from "./root";

const PEER_METADATA = String.UTF8.encode("x-envoy-peer-metadata");
const PEER_METADATA_ID = String.UTF8.encode("x-envoy-peer-metadata-id");
const STATUS = String.UTF8.encode(":status");

// The request headers read, all with one host call; indices 4-12 are the trace headers
// (tracing.ts), in the same order.
const REQUEST_HEADERS: StaticArray<ArrayBuffer> = [
  PEER_METADATA,
  PEER_METADATA_ID,
  String.UTF8.encode(":authority"),
  String.UTF8.encode("content-type"),
  String.UTF8.encode("x-request-id"),
  String.UTF8.encode("traceparent"),
  String.UTF8.encode("tracestate"),
  String.UTF8.encode("b3"),
  String.UTF8.encode("x-b3-traceid"),
  String.UTF8.encode("x-b3-spanid"),
  String.UTF8.encode("x-b3-parentspanid"),
  String.UTF8.encode("x-b3-sampled"),
  String.UTF8.encode("x-b3-flags"),
  String.UTF8.encode(":method"),
  String.UTF8.encode(":path"),
];
const H_PEER_METADATA = 0;
const H_PEER_METADATA_ID = 1;
const H_AUTHORITY = 2;
const H_CONTENT_TYPE = 3;
const H_METHOD = 13;
const H_PATH = 14;

export class HttpTelemetry {
  private role: Role = Role.Inbound;
  private downstreamPeer: WorkloadInfo | null = null;
  private upstreamPeer: WorkloadInfo | null = null;
  private peerAskedForMetadata: bool = false;
  private host: string = "";
  private grpc: bool = false;
  private trace: RequestTrace | null = null;
  /** Route and cluster, once read (outbound: on the request headers). */
  private upstream: UpstreamRoute | null = null;
  /** The upstream is outside the mesh (and skip_external_clusters is on). */
  private external: bool = false;
  private method: string = "";
  private authority: string = "";
  private path: string = "";
  /** The response's :status, read with the response headers; "" until then. */
  private responseCode: string = "";

  constructor(
    readonly root: TelemetryRoot,
    readonly contextId: u32,
  ) {}

  onRequestHeaders(): void {
    const root = this.root;
    this.role = roleOf(root.config.reporter);
    const h = this.readRequestHeaders();
    // The exchange headers never reach the application, whether believed or not.
    if (h.get(H_PEER_METADATA) !== null) removeHeader(MapType.RequestHeaders, PEER_METADATA);
    if (h.get(H_PEER_METADATA_ID) !== null) removeHeader(MapType.RequestHeaders, PEER_METADATA_ID);
    if (this.role != Role.Inbound) {
      if (root.config.skipExternalClusters) {
        const upstream = readUpstreamRoute(this.role);
        this.upstream = upstream;
        this.external = upstreamIsExternal(upstream);
      }
      if (!this.external) {
        replaceHeader(MapType.RequestHeaders, PEER_METADATA, root.local.exchangeValue);
        replaceHeader(MapType.RequestHeaders, PEER_METADATA_ID, root.local.exchangeId);
      }
    }
    if (root.config.tracing.enabled) this.trace = beginTrace(root, h);
  }

  /**
   * A request answered before it reached this filter (an RBAC denial, another filter's local
   * reply, a reset before the headers were complete) is still counted when it is logged, as
   * Istio counts it: its headers are read then, without changing anything.
   */
  onLogWithoutHeaders(): void {
    this.role = roleOf(this.root.config.reporter);
    this.readRequestHeaders();
    this.onLog();
  }

  // The request facts every stream needs, from one read of the request headers: the caller's
  // identity from the exchange headers (inbound), the authority, method, path and protocol.
  private readRequestHeaders(): HeaderSnapshot {
    const root = this.root;
    const h = pickHeaders(getHeaderPairs(MapType.RequestHeaders), REQUEST_HEADERS);
    const metadata = h.get(H_PEER_METADATA);
    if (metadata !== null && this.role != Role.Outbound) {
      if (this.trustsDownstream()) {
        this.peerAskedForMetadata = true;
        this.downstreamPeer = root.decodePeer(h.get(H_PEER_METADATA_ID), metadata);
      } else {
        root.countUntrustedPeerMetadata();
      }
    }
    this.authority = orEmpty(h, H_AUTHORITY);
    this.method = orEmpty(h, H_METHOD);
    this.path = orEmpty(h, H_PATH);
    if (this.role == Role.Outbound && !root.config.disableHostHeaderFallback) this.host = this.authority;
    const contentType = h.get(H_CONTENT_TYPE);
    this.grpc = contentType !== null && isGrpcContentType(contentType);
    return h;
  }

  private trustsDownstream(): bool {
    const trust = this.root.config.peerMetadataTrust;
    return trust == PeerTrust.Always || (trust == PeerTrust.MtlsOnly && downstreamIsMtls());
  }

  // `never` is about callers: a gateway's upstreams are mesh services and keep answering it.
  private trustsUpstream(): bool {
    if (this.external) return false;
    return this.root.config.peerMetadataTrust != PeerTrust.MtlsOnly || upstreamIsMtls();
  }

  onResponseHeaders(): void {
    const root = this.root;
    // A header read costs a tenth of the response.code attribute read at log time.
    this.responseCode = statusCode(getHeader(MapType.ResponseHeaders, STATUS));
    // A server answers the exchange only to a client that took part in it, as Istio does;
    // replacing overwrites whatever the application sent, so nothing to read or remove first.
    if (this.role == Role.Inbound && this.peerAskedForMetadata) {
      replaceHeader(MapType.ResponseHeaders, PEER_METADATA, root.local.exchangeValue);
      replaceHeader(MapType.ResponseHeaders, PEER_METADATA_ID, root.local.exchangeId);
      return;
    }
    const id = getHeader(MapType.ResponseHeaders, PEER_METADATA_ID);
    const metadata = getHeader(MapType.ResponseHeaders, PEER_METADATA);
    if (metadata !== null) {
      if (this.role != Role.Inbound && this.trustsUpstream()) {
        this.upstreamPeer = root.decodePeer(id === null ? null : String.UTF8.decode(id), String.UTF8.decode(metadata));
      }
      removeHeader(MapType.ResponseHeaders, PEER_METADATA);
    }
    if (id !== null) removeHeader(MapType.ResponseHeaders, PEER_METADATA_ID);
  }

  onLog(): void {
    const series = this.root.httpSeries;
    if (series === null) return;
    const plan = series.plan;
    const v = new StaticArray<string>(plan.slotCount);
    let upstream = this.upstream;
    if (upstream === null) upstream = readUpstreamRoute(this.role);
    fillPeerLabels(v, this.role, this.root.local.workload, this.downstreamPeer, this.upstreamPeer, this.host, upstream);
    v[Label.RequestProtocol] = this.grpc ? "grpc" : "http";
    // No response headers seen (reset before the response): Envoy's own account, 0 if none.
    v[Label.ResponseCode] = this.responseCode.length > 0 ? this.responseCode : getPropertyI64(P.RESPONSE_CODE, 0).toString();
    v[Label.ResponseFlags] = responseFlagsString(getPropertyI64(P.RESPONSE_FLAGS, 0));
    v[Label.GrpcResponseStatus] = this.grpc ? getPropertyI64(P.RESPONSE_GRPC_STATUS, 2).toString() : "";
    for (let i = 0; i < plan.expressions.length; i++) {
      const value = evaluateToString(plan.expressions[i], HOST_ATTRIBUTES);
      v[HTTP_LABEL_COUNT + i] = value === null ? UNKNOWN : value;
    }
    for (let i = 0; i < v.length; i++) v[i] = sanitizeLabelValue(v[i]);
    const ids = series.resolve(v);
    // The four standard families, in HTTP_METRIC_NAMES order, then the custom definitions.
    const requestBytes = getPropertyI64(P.REQUEST_TOTAL_SIZE, 0);
    const responseBytes = getPropertyI64(P.RESPONSE_TOTAL_SIZE, 0);
    const reported = isReported(this.root, this.trace);
    const durationNs = ids[1] >= 0 || reported ? getPropertyI64(P.REQUEST_DURATION, 0) : 0;
    if (ids[0] >= 0) incrementMetric(<u32>ids[0], 1);
    if (ids[1] >= 0) recordMetric(<u32>ids[1], <u64>(durationNs / 1000000));
    if (ids[2] >= 0) recordMetric(<u32>ids[2], <u64>requestBytes);
    if (ids[3] >= 0) recordMetric(<u32>ids[3], <u64>responseBytes);
    if (reported) {
      const f = new SpanFacts();
      f.method = this.method;
      f.authority = this.authority;
      f.path = this.path;
      f.requestBytes = requestBytes;
      f.responseBytes = responseBytes;
      f.durationNs = durationNs;
      f.cluster = upstream.cluster;
      finishTrace(this.root, this.contextId, this.trace!, this.role, v, f);
    }
    for (let f = 4; f < ids.length; f++) {
      if (ids[f] < 0) continue;
      const family = plan.families[f];
      const value = evaluateToInt(family.value!, HOST_ATTRIBUTES);
      if (!value.present) continue;
      // Counters only grow (Envoy refuses a zero or negative increment).
      if (family.type == DefinitionType.Counter) {
        if (value.value > 0) incrementMetric(<u32>ids[f], value.value);
      } else if (value.value >= 0) {
        recordMetric(<u32>ids[f], <u64>value.value);
      }
    }
  }
}

function orEmpty(h: HeaderSnapshot, index: i32): string {
  const v = h.get(index);
  return v === null ? "" : v;
}

// A :status of three digits, as text; "" for anything else.
function statusCode(status: ArrayBuffer | null): string {
  if (status === null || status.byteLength != 3) return "";
  const p = changetype<usize>(status);
  for (let i: usize = 0; i < 3; i++) {
    const c = load<u8>(p + i);
    if (c < 0x30 || c > 0x39) return "";
  }
  return String.UTF8.decodeUnsafe(p, 3);
}

function isGrpcContentType(contentType: string): bool {
  return contentType == "application/grpc" || contentType.startsWith("application/grpc+");
}
