// The HTTP side of a stream: the metadata exchange and trace context on the request and
// response headers, and the facts of the request (RequestInfo) for the reporter when the stream
// is logged. On the request it takes the downstream peer from Istio's exchange headers (and
// strips them) and injects this proxy's identity upstream unless inbound; on the response it
// does the same for the upstream peer, or answers the exchange (inbound).
import { getHeaderPairs, MapType, removeHeader, replaceHeader } from "../sdk/host";
import { HeaderSnapshot, pickHeaders } from "../sdk/headers";
import { PeerTrust } from "../config/config";
import { beginTrace } from "./tracing";
import { H, PEER_METADATA, PEER_METADATA_ID, R, REQUEST_HEADERS, RESPONSE_HEADERS } from "./headers";
import { RequestInfo, Role } from "./info";
import { Telemetry } from "./telemetry";
import { markHttpConnection } from "./http-connections";

export class HttpStream {
  readonly info: RequestInfo = new RequestInfo();
  private peerAskedForMetadata: bool = false;
  /** The upstream is outside the mesh (and skip_external_clusters is on). */
  private external: bool = false;

  constructor(
    readonly telemetry: Telemetry,
    contextId: u32,
  ) {
    this.info.role = telemetry.role();
    this.info.contextId = contextId;
  }

  onRequestHeaders(): void {
    markHttpConnection();
    const t = this.telemetry;
    const info = this.info;
    const h = this.readRequestHeaders();
    // The exchange headers never reach the application, whether believed or not.
    if (h.has(H.PeerMetadata)) removeHeader(MapType.RequestHeaders, PEER_METADATA);
    if (h.has(H.PeerMetadataId)) removeHeader(MapType.RequestHeaders, PEER_METADATA_ID);
    if (info.role != Role.Inbound) {
      const upstream = t.readUpstream(info.role);
      info.upstream = upstream;
      this.external = t.config.skipExternalClusters && t.isExternal(upstream);
      if (!this.external) {
        replaceHeader(MapType.RequestHeaders, PEER_METADATA, t.local.exchangeValue);
        replaceHeader(MapType.RequestHeaders, PEER_METADATA_ID, t.local.exchangeId);
      }
    }
    const tracing = t.tracing;
    if (tracing !== null) {
      const trace = beginTrace(tracing, h);
      info.trace = trace;
      if (trace.span.isSampled() && t.spans !== null) this.keepRequestLine(h);
    }
    h.release();
  }

  /**
   * A request answered before it reached this filter (an RBAC denial, another filter's local
   * reply, a reset before the headers were complete) is still counted when it is logged, as
   * Istio counts it: its headers are read then, without changing anything.
   */
  onLogWithoutHeaders(): void {
    markHttpConnection();
    this.readRequestHeaders().release();
    this.onLog();
  }

  // The request facts from one read of the request headers: the caller's identity from the
  // exchange headers (inbound, when believed), the Host header and the protocol.
  private readRequestHeaders(): HeaderSnapshot {
    const t = this.telemetry;
    const info = this.info;
    const h = pickHeaders(getHeaderPairs(MapType.RequestHeaders), REQUEST_HEADERS, t.requestHeaders);
    if (h.has(H.PeerMetadata) && info.role != Role.Outbound) {
      if (this.trustsDownstream()) {
        this.peerAskedForMetadata = true;
        info.downstreamPeer = t.peer(h.start(H.PeerMetadataId), h.length(H.PeerMetadataId), h.start(H.PeerMetadata), h.length(H.PeerMetadata));
      } else {
        t.countUntrustedPeerMetadata();
      }
    }
    if (info.role == Role.Outbound && !t.config.disableHostHeaderFallback) {
      const host = h.get(H.Authority);
      if (host !== null) info.host = host;
    }
    info.grpc = isGrpcContentType(h);
    return h;
  }

  private keepRequestLine(h: HeaderSnapshot): void {
    const info = this.info;
    const authority = h.get(H.Authority);
    const method = h.get(H.Method);
    const path = h.get(H.Path);
    info.authority = authority === null ? "" : authority;
    info.method = method === null ? "" : method;
    info.path = path === null ? "" : path;
  }

  private trustsDownstream(): bool {
    const trust = this.telemetry.config.peerMetadataTrust;
    return trust == PeerTrust.Always || (trust == PeerTrust.MtlsOnly && this.telemetry.downstreamIsMtls());
  }

  // `never` is about callers: a gateway's upstreams are mesh services and keep answering it.
  private trustsUpstream(): bool {
    if (this.external) return false;
    return this.telemetry.config.peerMetadataTrust != PeerTrust.MtlsOnly || this.telemetry.upstreamIsMtls();
  }

  onResponseHeaders(): void {
    const t = this.telemetry;
    const info = this.info;
    // A server answers the exchange only to a client that took part in it, as Istio does;
    // replacing overwrites whatever the application sent, so nothing to read or remove first.
    if (info.role == Role.Inbound && this.peerAskedForMetadata) {
      replaceHeader(MapType.ResponseHeaders, PEER_METADATA, t.local.exchangeValue);
      replaceHeader(MapType.ResponseHeaders, PEER_METADATA_ID, t.local.exchangeId);
      return;
    }
    // Otherwise exchange headers in a response never reach the caller; outbound, they are the
    // upstream's identity.
    const h = pickHeaders(getHeaderPairs(MapType.ResponseHeaders), RESPONSE_HEADERS, t.responseHeaders);
    info.responseCode = statusCode(h);
    if (h.has(R.PeerMetadata)) {
      if (info.role != Role.Inbound && this.trustsUpstream()) {
        info.upstreamPeer = t.peer(h.start(R.PeerMetadataId), h.length(R.PeerMetadataId), h.start(R.PeerMetadata), h.length(R.PeerMetadata));
      }
      removeHeader(MapType.ResponseHeaders, PEER_METADATA);
    }
    if (h.has(R.PeerMetadataId)) removeHeader(MapType.ResponseHeaders, PEER_METADATA_ID);
    h.release();
  }

  onLog(): void {
    this.telemetry.reportRequest(this.info);
  }
}

// A :status of three digits; 0 for anything else.
function statusCode(h: HeaderSnapshot): i32 {
  if (h.length(R.Status) != 3) return 0;
  const p = h.start(R.Status);
  let code = 0;
  for (let i: usize = 0; i < 3; i++) {
    const c = <i32>load<u8>(p + i);
    if (c < 0x30 || c > 0x39) return 0;
    code = code * 10 + (c - 0x30);
  }
  return code;
}

function isGrpcContentType(h: HeaderSnapshot): bool {
  const n = h.length(H.ContentType);
  if (n < 16) return false;
  const p = h.start(H.ContentType);
  // "application/grpc" exactly, or followed by "+" (application/grpc+proto, ...).
  if (memory.compare(p, changetype<usize>(GRPC), 16) != 0) return false;
  return n == 16 || load<u8>(p + 16) == 0x2b;
}

const GRPC = String.UTF8.encode("application/grpc");
