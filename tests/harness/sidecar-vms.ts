// Istio-shaped sidecars on the test host (tests/harness/proxywasm.ts): a client VM on an
// outbound listener and a server VM on an inbound one, with istio-agent's node metadata, the
// cluster metadata istiod sets and the attributes Envoy serves for a plain-text request, and a
// request passed between them as Envoy would (the client's forwarded headers are the server's
// request, the server's response is the client's). The topology is the benchmark's
// (bench/topology.ts): productpage-v1 calling reviews-v1 in `default`.
import { istioServiceMetadata, serviceHost, sidecarNode, type Workload } from "./sidecars.ts";
import { Direction, HttpStream, ProxyWasmVm, type Properties, type Value, type VmOptions } from "./proxywasm.ts";

export type { Workload };

/** The benchmark's pair too (bench/topology.ts takes them from here). */
export const CLIENT: Workload = { workload: "productpage-v1", namespace: "default", app: "productpage", version: "v1" };
export const SERVER: Workload = { workload: "reviews-v1", namespace: "default", app: "reviews", version: "v1" };
export const SERVICE = { name: SERVER.app, namespace: SERVER.namespace };
export const SERVICE_HOST = serviceHost(SERVICE);
export const OUTBOUND_CLUSTER = `outbound|9080||${SERVICE_HOST}`;
export const INBOUND_CLUSTER = "inbound|9080||";

/** Tracing as the benchmark's configurations set it. */
export const TRACING_OFF = { tracing: { enabled: false } };
export function tracingAt(percent: number): { tracing: unknown } {
  return { tracing: { random_sampling_percentage: percent, zipkin: { cluster: "zipkin" } } };
}

/** Node metadata and id as istio-agent sets them, from the shared sidecar description. */
export function nodeOf(w: Workload): { nodeId: string; nodeMetadata: { [key: string]: Value } } {
  const node = sidecarNode(w);
  return { nodeId: node.id, nodeMetadata: node.metadata as { [key: string]: Value } };
}

/** istiod's filter_metadata.istio of a service's cluster. */
export function clusterMetadata(service: { name: string; namespace: string }): Value {
  return { filter_metadata: { istio: istioServiceMetadata(service) } };
}

/**
 * The attributes Envoy answers for a completed plain-text request through a sidecar: route and
 * cluster, sizes (a 1 KiB body back), duration, time, the connection and both addresses. No TLS
 * attributes (plain text), no upstream host metadata.
 */
export function requestAttributes(cluster: string, service: Value | null): Properties {
  const p: Properties = {};
  const xds: { [key: string]: Value } = { cluster_name: cluster, route_name: "default" };
  if (service !== null) xds.cluster_metadata = service;
  p.xds = xds;
  p.request = { duration: 1_250_000n, time: 1_700_000_000_000_000_000n, total_size: 180n };
  p.response = { code: 200n, flags: 0n, total_size: 1150n };
  p.connection = { id: 7n };
  p.source = { address: "10.0.0.1:41234" };
  p.upstream = { address: "10.0.0.2:9080" };
  return p;
}

export interface SidecarVmOptions extends Omit<VmOptions, "nodeMetadata" | "nodeId"> {
  workload?: Workload;
}

function sidecar(direction: number, w: Workload, attributes: Properties, o: SidecarVmOptions): ProxyWasmVm {
  const { workload: _w, properties, ...rest } = o;
  const p: Properties = { ...attributes };
  p.xds = { ...(p.xds as object), listener_direction: direction } as Value;
  for (const [k, v] of Object.entries(properties ?? {})) p[k] = v;
  return new ProxyWasmVm({ ...nodeOf(w), ...rest, properties: p });
}

/** A client sidecar: the plugin on the outbound listener to reviews, root id stats_outbound unless given. */
export function clientSidecar(o: SidecarVmOptions = {}): ProxyWasmVm {
  const w = o.workload ?? CLIENT;
  return sidecar(Direction.Outbound, w, requestAttributes(OUTBOUND_CLUSTER, clusterMetadata(SERVICE)), { rootId: "stats_outbound", ...o });
}

/** A server sidecar: the plugin on the inbound listener, root id stats_inbound unless given. */
export function serverSidecar(o: SidecarVmOptions = {}): ProxyWasmVm {
  const w = o.workload ?? SERVER;
  return sidecar(Direction.Inbound, w, requestAttributes(INBOUND_CLUSTER, null), { rootId: "stats_inbound", ...o });
}

/** A request as it reaches the client sidecar, with the x-request-id Envoy's HCM adds. */
export function clientRequest(requestId = "5f0c5a2e-3a57-4c48-9d2b-2f4d8e1c7b10"): Array<[string, string]> {
  return [
    [":authority", "reviews:9080"], [":path", "/reviews/1"], [":method", "GET"], [":scheme", "http"],
    ["user-agent", "h2load nghttp2/1.52.0"], ["accept", "*/*"], ["x-request-id", requestId],
  ];
}

export const OK_RESPONSE: Array<[string, string]> = [[":status", "200"], ["content-type", "text/plain"], ["content-length", "1024"]];

export interface Exchange {
  client: HttpStream;
  server: HttpStream;
}

/**
 * One request through both sidecars, as Envoy runs it: client request headers, server request
 * headers (what the client forwarded), server response headers, server log and delete, client
 * response headers (what the server returned), client log and delete.
 */
export function throughPair(client: ProxyWasmVm, server: ProxyWasmVm, request = clientRequest(), response = OK_RESPONSE): Exchange {
  const c = client.http();
  c.requestHeaders(request);
  const s = server.http();
  s.requestHeaders(c.request);
  s.responseHeaders(response);
  s.log();
  s.delete();
  c.responseHeaders(s.response);
  c.log();
  c.delete();
  return { client: c, server: s };
}
