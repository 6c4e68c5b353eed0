// Istio-shaped sidecars: the one place tests, the demo and the benchmark get them from.
//   - identity: node metadata as istio-agent writes it, SPIFFE ids;
//   - clusters carrying istiod's `istio` filter metadata (services, endpoint workload labels);
//   - Istio's mutual TLS: origination (SNI, ALPN, SAN check) and PERMISSIVE termination;
//   - loopback sidecars: the plugin on an outbound (client) or inbound (server) listener, each
//     on its own 127.0.0.1 port (sidecarConfig builds, startSidecar also starts Envoy).
// The demo's intercepted pods (tools/mesh/envoy-config.ts) lay out istiod's virtual listeners
// from the same pieces.
import {
  freePort, httpListener, renderTemplate, startEnvoy, tcpListener, wasmHttpFilter, wasmNetworkFilter,
  type Envoy, type NodeIdentity, type WasmFilterOptions,
} from "./envoy.ts";

// ---- Identity ----

export interface Workload {
  /** Workload (deployment) name, e.g. "reviews-v2". */
  workload: string;
  namespace: string;
  app: string;
  /** Canonical revision; "" for none (gateways: "latest"). */
  version: string;
  cluster?: string;
}

function podName(w: Workload): string {
  return `${w.workload}-5d8f7c9b4-x2x7k`;
}

/**
 * Node identity and metadata as istio-agent sets them; a gateway gets a `router~` id and no
 * version label. `extraLabels`: more pod labels (a gateway's `istio: ingressgateway`).
 */
export function sidecarNode(w: Workload, ip = "127.0.0.1", kind: "sidecar" | "gateway" = "sidecar", extraLabels: Record<string, string> = {}): NodeIdentity {
  const pod = podName(w);
  const labels: Record<string, string> = {
    app: w.app,
    version: w.version,
    "service.istio.io/canonical-name": w.app,
    "service.istio.io/canonical-revision": w.version,
  };
  if (kind === "gateway") {
    delete labels.version;
    labels["service.istio.io/canonical-revision"] = "latest";
  }
  Object.assign(labels, extraLabels);
  return {
    id: `${kind === "gateway" ? "router" : "sidecar"}~${ip}~${pod}.${w.namespace}~${w.namespace}.svc.cluster.local`,
    cluster: `${w.app}.${w.namespace}`,
    metadata: {
      NAME: pod,
      NAMESPACE: w.namespace,
      WORKLOAD_NAME: w.workload,
      CLUSTER_ID: w.cluster ?? "Kubernetes",
      OWNER: `kubernetes://apis/apps/v1/namespaces/${w.namespace}/deployments/${w.workload}`,
      LABELS: labels,
      ISTIO_VERSION: "1.28.0",
    },
  };
}

// ---- Services and clusters ----

export interface ServiceRef {
  name: string;
  namespace: string;
}

export function serviceHost(s: ServiceRef): string {
  return `${s.name}.${s.namespace}.svc.cluster.local`;
}

/** istiod's endpoint label: "workload;namespace;canonical-service;revision;cluster". */
function workloadLabel(w: Workload): string {
  return `${w.workload};${w.namespace};${w.app};${w.version || "latest"};${w.cluster ?? "Kubernetes"}`;
}

export interface Endpoint {
  port: number;
  /** 127.0.0.1 unless given. */
  address?: string;
  /** The pod behind the endpoint: its istio.workload label. */
  workload?: Workload;
}

/** istiod's `filter_metadata.istio` of a service's cluster: the service it serves. */
export function istioServiceMetadata(service: ServiceRef): { services: Array<{ host: string; name: string; namespace: string }> } {
  return { services: [{ host: serviceHost(service), name: service.name, namespace: service.namespace }] };
}

/**
 * A cluster as istiod sends it: `filter_metadata.istio.services` naming the service (none for
 * a plain upstream), one endpoint per pod with its workload label, round robin between them.
 */
export function serviceCluster(name: string, service: ServiceRef | null, endpoints: Endpoint[]): any {
  const cluster = renderTemplate("mesh-service-cluster.yaml", {
    NAME: name,
    ISTIO_METADATA: service ? istioServiceMetadata(service) : {},
    LB_ENDPOINTS: endpoints.map((e) => ({
      endpoint: { address: { socket_address: { address: e.address ?? "127.0.0.1", port_value: e.port } } },
      ...(e.workload ? { metadata: { filter_metadata: { istio: { workload: workloadLabel(e.workload) } } } } : {}),
    })),
  });
  if (!service) delete cluster.metadata;
  return cluster;
}

/** Makes a cluster speak HTTP/2 to its endpoints (gRPC apps, h2 upstreams). */
export function http2Upstream(cluster: any): any {
  cluster.typed_extension_protocol_options = {
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
      "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
      explicit_http_config: { http2_protocol_options: {} },
    },
  };
  return cluster;
}

// ---- Mutual TLS, as istiod configures it (auto mTLS, PERMISSIVE peer authentication) ----
// Certificates are files (cert-chain.pem, key.pem, root-cert.pem; ca.ts), where Istio would
// deliver the same over SDS.

/** Where a proxy finds its certificate files, and its own SPIFFE id (ca.ts's WorkloadCert is one). */
export interface ProxyCerts {
  dir: string;
  spiffeId: string;
}

/** How a hop's bytes are framed: HTTP/1.1, HTTP/2 (gRPC) or opaque TCP. */
export type Protocol = "http" | "grpc" | "tcp";

const TLS_SOCKET = "envoy.transport_sockets.tls";
// ALPN, from istio pilot/pkg/networking/util: the client offers istio-peer-exchange + istio on
// TCP clusters (ALPNInMeshWithMxc); on HTTP clusters Istio's istio.alpn filter overrides that
// with istio-http/1.0, istio-http/1.1 or istio-h2 by upstream protocol.
const ALPN_CLIENT: Record<Protocol, string[]> = { http: ["istio-http/1.1"], grpc: ["istio-h2"], tcp: ["istio-peer-exchange", "istio"] };
// The inbound side selects its mTLS chains by the client's offer (tls_inspector) ...
const ALPN_MATCH_HTTP = ["istio-http/1.0", "istio-http/1.1", "istio-h2"];
const ALPN_MATCH_TCP = ["istio-peer-exchange", "istio"];
// ... and answers with these (ALPNHttp, ALPNDownstreamWithMxc).
const ALPN_SERVER_HTTP = ["h2", "http/1.1"];
const ALPN_SERVER_TCP = ["istio-peer-exchange", "h2", "http/1.1"];

const TLS_INSPECTOR = {
  name: "envoy.filters.listener.tls_inspector",
  typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector" },
};

function commonTlsContext(certs: ProxyCerts, alpn: string[], peerSans?: string[]): any {
  return {
    alpn_protocols: alpn,
    tls_certificates: [{ certificate_chain: { filename: `${certs.dir}/cert-chain.pem` }, private_key: { filename: `${certs.dir}/key.pem` } }],
    validation_context: {
      trusted_ca: { filename: `${certs.dir}/root-cert.pem` },
      ...(peerSans?.length ? { match_typed_subject_alt_names: peerSans.map((san) => ({ san_type: "URI", matcher: { exact: san } })) } : {}),
    },
  };
}

export interface MtlsTarget {
  service: ServiceRef;
  /** The service port (SNI outbound_.<port>_._.<fqdn>). */
  port: number;
  protocol: Protocol;
  /** The SPIFFE ids accepted from the server; any certificate of the mesh root when empty. */
  serverSans?: string[];
}

/** The client side of Istio's mTLS to a service port: SNI, Istio's ALPN for the protocol, the SAN check. */
export function originateMtlsSocket(certs: ProxyCerts, to: MtlsTarget): any {
  return {
    name: TLS_SOCKET,
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
      sni: `outbound_.${to.port}_._.${serviceHost(to.service)}`,
      common_tls_context: commonTlsContext(certs, ALPN_CLIENT[to.protocol], to.serverSans),
    },
  };
}

/** Makes a cluster originate Istio's mTLS (ISTIO_MUTUAL) to `to`. */
export function originateMtls(cluster: any, certs: ProxyCerts, to: MtlsTarget): any {
  cluster.transport_socket = originateMtlsSocket(certs, to);
  return cluster;
}

/**
 * Istio's auto mTLS on an outbound cluster: transport_socket_matches picks mTLS for endpoints
 * labelled tlsMode=istio (every sidecar'd pod, so all of them here), plaintext otherwise.
 */
export function autoMtls(cluster: any, certs: ProxyCerts, to: MtlsTarget): any {
  for (const e of cluster.load_assignment.endpoints.flatMap((x: any) => x.lb_endpoints)) {
    e.metadata ??= { filter_metadata: {} };
    e.metadata.filter_metadata["envoy.transport_socket_match"] = { tlsMode: "istio" };
  }
  cluster.transport_socket_matches = [
    { name: "tlsMode-istio", match: { tlsMode: "istio" }, transport_socket: originateMtlsSocket(certs, to) },
    { name: "tlsMode-disabled", match: {}, transport_socket: { name: "envoy.transport_sockets.raw_buffer", typed_config: { "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer" } } },
  ];
  return cluster;
}

/** Istio's STRICT peer authentication on a listener: every chain requires a mesh client certificate. */
export function strictMtls(listener: any, certs: ProxyCerts, protocol: Protocol): any {
  for (const chain of listener.filter_chains) chain.transport_socket = terminateMtls(certs, protocol);
  return listener;
}

/** Terminates mutual TLS on an inbound chain: a client certificate from the mesh root is required. */
function terminateMtls(certs: ProxyCerts, protocol: Protocol): any {
  return {
    name: TLS_SOCKET,
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
      require_client_certificate: true,
      common_tls_context: commonTlsContext(certs, protocol === "tcp" ? ALPN_SERVER_TCP : ALPN_SERVER_HTTP),
    },
  };
}

/**
 * PERMISSIVE inbound chains for one port, as istiod builds them: mTLS (transport tls, Istio's
 * ALPN) and plaintext (raw_buffer), the same filters on both, both named alike (istiod's
 * inboundChainConfig.Name). Without certificates, plaintext only. The listener needs TLS_INSPECTOR.
 */
export function inboundChains(name: string, port: number | undefined, protocol: Protocol, filters: any[], certs?: ProxyCerts): any[] {
  const ports = port === undefined ? {} : { destination_port: port };
  if (!certs) return [{ name, ...(port === undefined ? {} : { filter_chain_match: ports }), filters }];
  return [
    {
      name,
      filter_chain_match: { ...ports, transport_protocol: "tls", application_protocols: protocol === "tcp" ? ALPN_MATCH_TCP : ALPN_MATCH_HTTP },
      filters: structuredClone(filters),
      transport_socket: terminateMtls(certs, protocol),
    },
    { name, filter_chain_match: { ...ports, transport_protocol: "raw_buffer" }, filters },
  ];
}

// ---- Loopback sidecars ----

export interface Outbound {
  service: ServiceRef;
  /** The service's endpoints: server sidecars' inbound ports, or apps. */
  endpoints: Endpoint[];
  /** The service port in cluster names and SNI; 80 unless given. */
  servicePort?: number;
  protocol?: Protocol;
  /** Originate Istio's mTLS with the sidecar's certificates (SidecarOptions.certs). */
  mtls?: boolean;
  /** With mtls, the SPIFFE ids accepted from the server. */
  serverSans?: string[];
}

export interface SidecarOptions {
  workload: Workload;
  kind?: "sidecar" | "gateway";
  /** Where the inbound listener forwards (the app's port); omit for a client-only sidecar. */
  appPort?: number;
  /** What the app speaks; http unless given. */
  appProtocol?: Protocol;
  /** The service port in the inbound cluster's name; the app port unless given. */
  servicePort?: number;
  /** Services this sidecar calls: an outbound listener per entry. */
  outbound?: Outbound[];
  /** The plugin as an HTTP filter on HTTP listeners (with these options; the defaults when omitted); null: none (bare Envoy). */
  plugin?: WasmFilterOptions | null;
  /** The plugin as a network filter on TCP listeners; none unless given. */
  networkPlugin?: WasmFilterOptions;
  /** HTTP filters per direction as a WasmPlugin loader rendered them, instead of `plugin`. */
  httpFilters?: { inbound: any[]; outbound: any[] };
  /** Extra pod labels in the node metadata (a gateway's `istio: ingressgateway`). */
  labels?: Record<string, string>;
  /** Listen on these ports instead of free ones (the inbound listener; outbound per service name). */
  ports?: { inbound?: number; outbound?: Record<string, number> };
  /** The sidecar's certificates: inbound accepts mTLS and plaintext (PERMISSIVE); outbound may originate mTLS. */
  certs?: ProxyCerts;
  /** More clusters, e.g. a collector the plugin reports to. */
  clusters?: any[];
  /** Envoy's name in logs; workload.namespace unless given. */
  name?: string;
  concurrency?: number;
  flushOnAdmin?: boolean;
}

export interface SidecarConfig {
  name: string;
  node: NodeIdentity;
  listeners: any[];
  clusters: any[];
  inboundPort: number;
  /** Outbound listener port per service name. */
  outboundPorts: Record<string, number>;
}

export interface Sidecar {
  envoy: Envoy;
  inboundPort: number;
  /** Outbound listener port per service name. */
  outboundPorts: Record<string, number>;
}

function listenerFor(protocol: Protocol, name: string, port: number, direction: "INBOUND" | "OUTBOUND", cluster: string, opts: SidecarOptions): any {
  if (protocol === "tcp") {
    return tcpListener({ name, port, direction, cluster, filters: opts.networkPlugin ? [wasmNetworkFilter(opts.networkPlugin)] : [] });
  }
  const loaded = opts.httpFilters?.[direction === "INBOUND" ? "inbound" : "outbound"];
  const filters = loaded ?? (opts.plugin === null ? [] : [wasmHttpFilter(opts.plugin)]);
  return httpListener({ name, port, direction, cluster, filters });
}

/** A loopback sidecar's listeners, clusters and node, on free ports unless `ports` fixes them. */
export async function sidecarConfig(opts: SidecarOptions): Promise<SidecarConfig> {
  const listeners = [];
  const clusters = [];
  const outboundPorts: Record<string, number> = {};
  let inboundPort = 0;
  const w = opts.workload;
  if (opts.appPort !== undefined) {
    const protocol = opts.appProtocol ?? "http";
    inboundPort = opts.ports?.inbound ?? await freePort();
    const cluster = `inbound|${opts.servicePort ?? opts.appPort}||`;
    const listener = listenerFor(protocol, "virtualInbound", inboundPort, "INBOUND", cluster, opts);
    if (opts.certs) {
      listener.listener_filters = [TLS_INSPECTOR];
      listener.filter_chains = inboundChains("virtualInbound", undefined, protocol, listener.filter_chains[0].filters, opts.certs);
    }
    listeners.push(listener);
    const c = serviceCluster(cluster, { name: w.app, namespace: w.namespace }, [{ port: opts.appPort }]);
    clusters.push(protocol === "grpc" ? http2Upstream(c) : c);
  }
  for (const o of opts.outbound ?? []) {
    const protocol = o.protocol ?? "http";
    const servicePort = o.servicePort ?? 80;
    const port = opts.ports?.outbound?.[o.service.name] ?? await freePort();
    const cluster = `outbound|${servicePort}||${serviceHost(o.service)}`;
    outboundPorts[o.service.name] = port;
    listeners.push(listenerFor(protocol, `outbound_${o.service.name}`, port, "OUTBOUND", cluster, opts));
    const c = serviceCluster(cluster, o.service, o.endpoints);
    if (protocol === "grpc") http2Upstream(c);
    if (o.mtls) {
      if (!opts.certs) throw new Error(`${w.workload}: outbound mTLS to ${o.service.name} needs the sidecar's certs`);
      originateMtls(c, opts.certs, { service: o.service, port: servicePort, protocol, serverSans: o.serverSans });
    }
    clusters.push(c);
  }
  clusters.push(...(opts.clusters ?? []));
  return {
    name: opts.name ?? `${w.workload}.${w.namespace}`,
    node: sidecarNode(w, "127.0.0.1", opts.kind, opts.labels),
    listeners,
    clusters,
    inboundPort,
    outboundPorts,
  };
}

export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const config = await sidecarConfig(opts);
  const envoy = await startEnvoy({
    name: config.name,
    node: config.node,
    listeners: config.listeners,
    clusters: config.clusters,
    concurrency: opts.concurrency,
    flushOnAdmin: opts.flushOnAdmin,
  });
  return { envoy, inboundPort: config.inboundPort, outboundPorts: config.outboundPorts };
}
