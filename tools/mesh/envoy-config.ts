// Envoy configuration for the mesh's proxies, as istiod + istio-agent would write it for each
// pod: istiod's listener layout from the envoy/mesh-*.yaml templates, the harness's bootstrap,
// and everything Istio-shaped from the one sidecar module (tests/harness/sidecars.ts: node
// metadata, service clusters, mutual TLS) with the filters the WasmPlugin loader produced.
//
// Intercepted pods (containers): virtualOutbound 15001 -> 0.0.0.0_9080 (routes by Host to
// outbound|9080||<svc>) or <ClusterIP>_6379 (tcp_proxy to outbound|6379||redis...),
// virtualInbound 15006 (per app port an mTLS and a plaintext chain -> inbound|<port>||), plus
// 15090 (/stats/prometheus) and 15021 (/healthz/ready); admin on 127.0.0.1:15000. With
// certificates, service clusters originate Istio's mTLS. The NETWORK WasmPlugin's filter sits
// where istiod puts it: in front of tcp_proxy and in front of every HTTP connection manager.
// Loopback pods (the fallback): the harness's loopback sidecars on explicit 127.0.0.1 ports.
import { renderTemplate, ROUTER_FILTER, staticCluster } from "../../tests/harness/envoy.ts";
import {
  autoMtls, inboundChains, serviceCluster, serviceHost, sidecarNode, type Endpoint, type ProxyCerts, type SidecarOptions,
} from "../../tests/harness/sidecars.ts";
import { filtersFor, type LoadedWasmPlugin } from "../../tests/harness/wasmplugin.ts";
import { spiffeId } from "../../tests/harness/ca.ts";
import { outboundClusterName, type PodDef, type ServiceDef, type Topology } from "./topology.ts";

export const ADMIN_PORT = 15000;

/** A pod as a cluster endpoint. */
function podEndpoint(address: string, port: number, pod: PodDef): Endpoint {
  return { address, port, workload: pod.workload };
}

/** The SPIFFE ids of the pods behind a service (istiod's service accounts for SAN checks). */
function serviceSans(t: Topology, s: ServiceDef): string[] {
  return [...new Set(t.pods.filter((p) => p.service === s.name).map((p) => spiffeId(p.workload.namespace, p.serviceAccount)))];
}

function passthroughCluster(name: string, bindAddress?: string): any {
  return {
    name,
    type: "ORIGINAL_DST",
    connect_timeout: "2s",
    lb_policy: "CLUSTER_PROVIDED",
    ...(bindAddress ? { upstream_bind_config: { source_address: { address: bindAddress, port_value: 0 } } } : {}),
  };
}

/**
 * istiod's network filters in front of an HTTP connection manager: NETWORK WasmPlugins go on HTTP
 * chains too (pilot/pkg/networking/core listener.go, listener_inbound.go), not only on TCP ones.
 */
function withNetworkFilters(listener: any, networkFilters: any[]): any {
  for (const chain of listener.filter_chains) chain.filters.unshift(...networkFilters);
  return listener;
}

function tcpProxy(statPrefix: string, cluster: string): any {
  return {
    name: "envoy.filters.network.tcp_proxy",
    typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", stat_prefix: statPrefix, cluster },
  };
}

/** Istio's default retry policy for routes without one (VirtualService-less services). */
const ISTIO_DEFAULT_RETRY = {
  retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
  num_retries: 2,
  retry_host_predicate: [{
    name: "envoy.retry_host_predicates.previous_hosts",
    typed_config: { "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate" },
  }],
  host_selection_retry_max_attempts: 5,
  retriable_status_codes: [503],
};

/** The Host header values istiod accepts for a service (short name, with namespace, FQDN, ClusterIP; with and without port). */
export function serviceDomains(s: ServiceDef, vip: string): string[] {
  const names = [s.name, `${s.name}.${s.namespace}`, `${s.name}.${s.namespace}.svc`, serviceHost(s), vip];
  return names.flatMap((n) => [n, `${n}:${s.port}`]);
}

function serviceRoute(cluster: string): any {
  return { name: "default", match: { prefix: "/" }, route: { cluster, timeout: "0s", retry_policy: ISTIO_DEFAULT_RETRY } };
}

export interface MeshAddressing {
  /** Pod IP by pod key. */
  podIp: (key: string) => string;
  /** ClusterIP by service name. */
  serviceIp: (name: string) => string;
  /** Zipkin collector as the proxies reach it. */
  zipkin: { address: string; port: number };
}

/** All service clusters of the mesh, with endpoints at the pods' IPs (every proxy gets all, as without a Sidecar resource). */
function serviceClusters(t: Topology, addr: MeshAddressing, certs?: ProxyCerts): any[] {
  return t.services.map((s) => {
    const c = serviceCluster(
      outboundClusterName(s),
      s,
      t.pods.filter((p) => p.service === s.name).map((p) => podEndpoint(addr.podIp(p.key), s.port, p)),
    );
    return certs ? autoMtls(c, certs, { service: s, port: s.port, protocol: s.protocol === "tcp" ? "tcp" : "http", serverSans: serviceSans(t, s) }) : c;
  });
}

function commonClusters(addr: MeshAddressing): any[] {
  return [
    staticCluster("prometheus_stats", ADMIN_PORT),
    staticCluster("agent", ADMIN_PORT),
    // Where the plugin will send spans once tracing is wired in (see tracingPluginConfig in plugin.ts).
    staticCluster("zipkin", addr.zipkin.port, addr.zipkin.address),
  ];
}

/**
 * The bootstrap of an intercepted pod (sidecar or gateway) in its own network namespace. With
 * `certs`, every hop to another sidecar is mutual TLS and inbound chains accept mTLS and
 * plaintext (PERMISSIVE, Istio's default).
 */
export function podBootstrap(t: Topology, pod: PodDef, addr: MeshAddressing, plugins: LoadedWasmPlugin[], certs?: ProxyCerts): any {
  const listeners: any[] = [...renderTemplate("mesh-agent-listeners.yaml", {})];
  const clusters: any[] = [...serviceClusters(t, addr, certs), ...commonClusters(addr)];
  const ports = [...new Set(t.services.filter((s) => s.protocol === "http").map((s) => s.port))];

  if (pod.kind === "gateway") {
    const target = t.services.find((s) => s.name === t.gatewayRoutesTo)!;
    listeners.push(withNetworkFilters(renderTemplate("mesh-gateway-listener.yaml", {
      NAME: `0.0.0.0_${t.gatewayPort}`,
      PORT: t.gatewayPort,
      ROUTE_NAME: `http.${t.gatewayPort}`,
      VIRTUAL_HOSTS: [{ name: "*:80", domains: ["*"], routes: [serviceRoute(outboundClusterName(target))] }],
      HTTP_FILTERS: [...filtersFor(plugins, "http", "outbound", t.gatewayPort), ROUTER_FILTER],
    }), filtersFor(plugins, "network", "outbound", t.gatewayPort)));
  } else {
    listeners.push(renderTemplate("mesh-virtual-outbound.yaml", {
      PASSTHROUGH_FILTERS: [...filtersFor(plugins, "network", "outbound"), tcpProxy("PassthroughCluster", "PassthroughCluster")],
    }));
    for (const port of ports) {
      listeners.push(withNetworkFilters(renderTemplate("mesh-outbound-http.yaml", {
        NAME: `0.0.0.0_${port}`,
        PORT: port,
        STAT_PREFIX: `outbound_0.0.0.0_${port}`,
        ROUTE_NAME: String(port),
        VIRTUAL_HOSTS: [
          ...t.services.filter((s) => s.port === port).map((s) => ({
            name: `${serviceHost(s)}:${s.port}`,
            domains: serviceDomains(s, addr.serviceIp(s.name)),
            routes: [serviceRoute(outboundClusterName(s))],
          })),
          { name: "allow_any", domains: ["*"], routes: [{ name: "allow_any", match: { prefix: "/" }, route: { cluster: "PassthroughCluster", timeout: "0s" } }] },
        ],
        HTTP_FILTERS: [...filtersFor(plugins, "http", "outbound", port), ROUTER_FILTER],
      }), filtersFor(plugins, "network", "outbound", port)));
    }
    // TCP services: istiod's <ClusterIP>_<port> listener (not bound), tcp_proxy to the service.
    for (const s of t.services.filter((x) => x.protocol === "tcp")) {
      const vip = addr.serviceIp(s.name);
      listeners.push({
        name: `${vip}_${s.port}`,
        address: { socket_address: { address: vip, port_value: s.port } },
        bind_to_port: false,
        traffic_direction: "OUTBOUND",
        filter_chains: [{ filters: [...filtersFor(plugins, "network", "outbound", s.port), tcpProxy(outboundClusterName(s), outboundClusterName(s))] }],
      });
    }
    const own = t.services.find((s) => s.name === pod.service)!;
    const inboundCluster = `inbound|${own.port}||`;
    const ownFilters = own.protocol === "tcp"
      ? [...filtersFor(plugins, "network", "inbound", own.port), tcpProxy(inboundCluster, inboundCluster)]
      : [...filtersFor(plugins, "network", "inbound", own.port), ...renderTemplate("mesh-inbound-http-chain.yaml", {
        NAME: `0.0.0.0_${own.port}`,
        PORT: own.port,
        STAT_PREFIX: `inbound_0.0.0.0_${own.port}`,
        CLUSTER: inboundCluster,
        HTTP_FILTERS: [...filtersFor(plugins, "http", "inbound", own.port), ROUTER_FILTER],
      }).filters];
    listeners.push(renderTemplate("mesh-virtual-inbound.yaml", {
      FILTER_CHAINS: [
        ...inboundChains(`0.0.0.0_${own.port}`, own.port, own.protocol, ownFilters, certs),
        { name: "InboundPassthroughFilterChain", filters: [...filtersFor(plugins, "network", "inbound"), tcpProxy("InboundPassthroughCluster", "InboundPassthroughCluster")] },
      ],
    }));
    clusters.push(
      serviceCluster(inboundCluster, own, [podEndpoint("127.0.0.1", own.port, pod)]),
      passthroughCluster("PassthroughCluster"),
      passthroughCluster("InboundPassthroughCluster", "127.0.0.6"),
    );
  }

  const node = sidecarNode(pod.workload, addr.podIp(pod.key), pod.kind, pod.labels);
  const bootstrap = renderTemplate("bootstrap.yaml", {
    NODE_ID: node.id,
    NODE_CLUSTER: node.cluster,
    NODE_METADATA: node.metadata,
    ADMIN_PORT: ADMIN_PORT,
    LISTENERS: listeners,
    CLUSTERS: clusters,
  });
  // Histograms are merged on each read of the admin API, so every scrape sees current values.
  bootstrap.stats_flush_on_admin = true;
  return bootstrap;
}

/** Ports of one pod in the loopback fallback (no namespaces: every listener on its own 127.0.0.1 port). */
export interface LoopbackPorts {
  app?: number;
  inbound?: number;
  /** The gateway's listener. */
  gateway?: number;
  /** Outbound listener per service this pod calls. */
  outbound: Record<string, number>;
}

/** A pod in the loopback fallback as one of the harness's loopback sidecars, on the ports given. */
export function loopbackSidecar(
  t: Topology, pod: PodDef, ports: Record<string, LoopbackPorts>, zipkin: { address: string; port: number }, plugins: LoadedWasmPlugin[],
): SidecarOptions {
  const mine = ports[pod.key];
  const gateway = pod.kind === "gateway";
  const calls = gateway ? [t.gatewayRoutesTo] : pod.app?.calls ?? [];
  const own = t.services.find((s) => s.name === pod.service);
  return {
    workload: pod.workload,
    kind: pod.kind,
    labels: pod.labels,
    appPort: gateway ? undefined : mine.app,
    servicePort: own?.port,
    outbound: calls.map((name) => {
      const s = t.services.find((x) => x.name === name)!;
      const endpoints = t.pods.filter((p) => p.service === s.name).map((p) => podEndpoint("127.0.0.1", ports[p.key].inbound!, p));
      return { service: s, servicePort: s.port, endpoints };
    }),
    httpFilters: { inbound: filtersFor(plugins, "http", "inbound"), outbound: filtersFor(plugins, "http", "outbound") },
    ports: { inbound: mine.inbound, outbound: gateway ? { [t.gatewayRoutesTo]: mine.gateway! } : mine.outbound },
    clusters: [staticCluster("zipkin", zipkin.port, zipkin.address)],
  };
}
