// What a stream learned about its request or connection: plain facts, filled by the callbacks
// (http.ts, tcp.ts) and handed to the reporter (telemetry.ts), which turns them into metric
// updates and spans. Facts flow one way: nothing here calls back into the stream.
import { PeerEntry } from "../peer/cache";
import { RequestTrace } from "./tracing";

export const enum Role {
  /** Client sidecar or gateway: reporter=source, local is the source. */
  Outbound,
  /** Server sidecar: reporter=destination, local is the destination. */
  Inbound,
  /** Waypoint: reports for the destination but sits between two peers. */
  Waypoint,
}

/** The route and cluster a stream takes; null when Envoy had none (a local reply). */
export class Upstream {
  route: string | null = null;
  cluster: string | null = null;
}

export class RequestInfo {
  role: Role = Role.Inbound;
  /** The stream's context, for host calls made on its behalf after a detour (a span flush). */
  contextId: u32 = 0;
  /** The caller's identity from its exchange headers (inbound, when believed). */
  downstreamPeer: PeerEntry | null = null;
  /** The upstream's identity from its exchange answer (outbound, when believed). */
  upstreamPeer: PeerEntry | null = null;
  /** Outbound: route and cluster read with the request headers; inbound: read at log. */
  upstream: Upstream | null = null;
  /** The Host header for destination_service (outbound with the fallback on), else "". */
  host: string = "";
  grpc: bool = false;
  /** The response's :status as read with the response headers (outbound); 0 until then. */
  responseCode: i32 = 0;
  /** Trace context; null when tracing is off. */
  trace: RequestTrace | null = null;
  /** Request line, kept only when the request's span will be reported. */
  method: string = "";
  authority: string = "";
  path: string = "";
}

export class ConnectionInfo {
  role: Role = Role.Inbound;
  /** Bytes from the downstream peer (Istio's "received") and from the upstream ("sent"). */
  received: u64 = 0;
  sent: u64 = 0;
  // The reporter's bookkeeping: what was reported so far, and the series once labels are known.
  reportedReceived: u64 = 0;
  reportedSent: u64 = 0;
  ids: StaticArray<i64> | null = null;

  constructor(readonly contextId: u32) {}
}
