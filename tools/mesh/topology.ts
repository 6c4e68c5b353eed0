// The demo mesh, shaped like Istio's bookinfo:
//
//   load generator (host) -> istio-ingressgateway -> productpage-v1 -> reviews-v1
//                                                                  -> reviews-v2 -> ratings-v1 -> redis-v1 (TCP)
//
// Every box is a pod: its own network namespace with an Envoy container (and, except the
// gateway, an app). reviews-v1 and reviews-v2 are two endpoints of one service, `reviews`,
// load-balanced round robin, so productpage's calls split between them. ratings fails a set
// share of its requests (HTTP 500, which Istio's default retry policy does not retry) and has
// a slow tail; reviews-v2 degrades gracefully when ratings fails (answers 200 without stars),
// so only the reviews-v2 -> ratings-v1 edge shows errors. ratings reads from a database over
// plain TCP, as bookinfo's ratings-v2 reads MongoDB: here Debian's redis-server, one connection
// per ratings request. Every sidecar-to-sidecar hop is mutual TLS with the pods' SPIFFE ids
// (service accounts as bookinfo's manifests name them).
import type { Workload } from "../../tests/harness/sidecars.ts";
import { serviceHost } from "../../tests/harness/sidecars.ts";

/** A Kubernetes service: name, namespace, port, and its ClusterIP (last octet in the mesh subnet). */
export interface ServiceDef {
  name: string;
  namespace: string;
  port: number;
  vipOctet: number;
  /** How istiod would treat the port (bookinfo's port names: http, tcp). */
  protocol: "http" | "tcp";
}

/** Latency the app adds to each request: base + uniform jitter, plus slowMs for a share slowRate. */
export interface Latency {
  baseMs: number;
  jitterMs: number;
  slowRate: number;
  slowMs: number;
}

export interface AppDef {
  /** A bookinfo app (apps/service.ts) or Debian's redis-server. */
  role: "productpage" | "reviews" | "ratings" | "redis";
  /** HTTP services it calls, by name. */
  calls: string[];
  /** TCP services it reads from, by name. */
  tcpCalls?: string[];
  /** Share of requests answered with HTTP 500 (exact over any run of requests, see apps/service.ts). */
  failRate: number;
  latency: Latency;
}

export interface PodDef {
  /** Short name, unique in the mesh: the netns is `<prefix>-<key>`, the container too. */
  key: string;
  workload: Workload;
  /** Kubernetes service account: the `sa` of its SPIFFE id. */
  serviceAccount: string;
  kind: "sidecar" | "gateway";
  /** The service this pod backs (sidecars). */
  service?: string;
  ipOctet: number;
  app?: AppDef;
  /** Extra pod labels (the gateway's `istio: ingressgateway`). */
  labels?: Record<string, string>;
}

export interface Topology {
  services: ServiceDef[];
  pods: PodDef[];
  /** The gateway's listener port (Istio's ingress gateway listens on 8080 in the pod). */
  gatewayPort: number;
  /** Service the gateway routes to. */
  gatewayRoutesTo: string;
}

export const APP_PORT = 9080;
export const REDIS_PORT = 6379;

export function bookinfo(opts: { ratingsFailRate?: number } = {}): Topology {
  const ns = "bookinfo";
  const quick: Latency = { baseMs: 1, jitterMs: 3, slowRate: 0, slowMs: 0 };
  return {
    gatewayPort: 8080,
    gatewayRoutesTo: "productpage",
    services: [
      { name: "productpage", namespace: ns, port: APP_PORT, vipOctet: 201, protocol: "http" },
      { name: "reviews", namespace: ns, port: APP_PORT, vipOctet: 202, protocol: "http" },
      { name: "ratings", namespace: ns, port: APP_PORT, vipOctet: 203, protocol: "http" },
      { name: "redis", namespace: ns, port: REDIS_PORT, vipOctet: 204, protocol: "tcp" },
    ],
    pods: [
      {
        key: "ingressgateway",
        kind: "gateway",
        ipOctet: 10,
        serviceAccount: "istio-ingressgateway-service-account",
        workload: { workload: "istio-ingressgateway", namespace: "istio-system", app: "istio-ingressgateway", version: "" },
        labels: { istio: "ingressgateway" },
      },
      {
        key: "productpage-v1",
        kind: "sidecar",
        service: "productpage",
        serviceAccount: "bookinfo-productpage",
        ipOctet: 11,
        workload: { workload: "productpage-v1", namespace: ns, app: "productpage", version: "v1" },
        app: { role: "productpage", calls: ["reviews"], failRate: 0, latency: quick },
      },
      {
        key: "reviews-v1",
        kind: "sidecar",
        service: "reviews",
        serviceAccount: "bookinfo-reviews",
        ipOctet: 12,
        workload: { workload: "reviews-v1", namespace: ns, app: "reviews", version: "v1" },
        app: { role: "reviews", calls: [], failRate: 0, latency: { baseMs: 2, jitterMs: 4, slowRate: 0, slowMs: 0 } },
      },
      {
        key: "reviews-v2",
        kind: "sidecar",
        service: "reviews",
        serviceAccount: "bookinfo-reviews",
        ipOctet: 13,
        workload: { workload: "reviews-v2", namespace: ns, app: "reviews", version: "v2" },
        app: { role: "reviews", calls: ["ratings"], failRate: 0, latency: { baseMs: 3, jitterMs: 5, slowRate: 0, slowMs: 0 } },
      },
      {
        key: "ratings-v1",
        kind: "sidecar",
        service: "ratings",
        serviceAccount: "bookinfo-ratings",
        ipOctet: 14,
        workload: { workload: "ratings-v1", namespace: ns, app: "ratings", version: "v1" },
        app: { role: "ratings", calls: [], tcpCalls: ["redis"], failRate: opts.ratingsFailRate ?? 0.15, latency: { baseMs: 5, jitterMs: 15, slowRate: 0.05, slowMs: 150 } },
      },
      {
        key: "redis-v1",
        kind: "sidecar",
        service: "redis",
        serviceAccount: "bookinfo-redis",
        ipOctet: 15,
        workload: { workload: "redis-v1", namespace: ns, app: "redis", version: "v1" },
        app: { role: "redis", calls: [], failRate: 0, latency: { baseMs: 0, jitterMs: 0, slowRate: 0, slowMs: 0 } },
      },
    ],
  };
}

/** The edges the topology produces (source workload -> destination workload), HTTP or TCP. */
export function expectedEdges(t: Topology, protocol: "http" | "tcp" = "http"): Array<{ source: string; destination: string }> {
  const byService = (name: string) => t.pods.filter((p) => p.service === name);
  const edges: Array<{ source: string; destination: string }> = [];
  for (const p of t.pods) {
    const calls = protocol === "tcp" ? p.app?.tcpCalls ?? [] : p.kind === "gateway" ? [t.gatewayRoutesTo] : p.app?.calls ?? [];
    for (const s of calls) for (const d of byService(s)) edges.push({ source: p.workload.workload, destination: d.workload.workload });
  }
  return edges;
}


/** Istio's outbound cluster name. */
export function outboundClusterName(s: ServiceDef): string {
  return `outbound|${s.port}||${serviceHost(s)}`;
}
