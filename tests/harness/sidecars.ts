// Istio-shaped sidecars on loopback: node metadata like istio-agent's, clusters carrying
// istiod's `istio` filter metadata, and the plugin on the outbound (client) or inbound (server)
// listener. Tests and the demo build their topologies from these pieces.
import { freePort, httpListener, staticCluster, startEnvoy, wasmHttpFilter, type Envoy, type WasmFilterOptions } from "./envoy.ts";

export interface Workload {
  /** Workload (deployment) name, e.g. "reviews-v2". */
  workload: string;
  namespace: string;
  app: string;
  version: string;
  cluster?: string;
}

export function podName(w: Workload): string {
  return `${w.workload}-5d8f7c9b4-x2x7k`;
}

/** Node identity and metadata as istio-agent sets them for a sidecar. */
export function sidecarNode(w: Workload, ip = "127.0.0.1") {
  const pod = podName(w);
  return {
    id: `sidecar~${ip}~${pod}.${w.namespace}~${w.namespace}.svc.cluster.local`,
    cluster: `${w.app}.${w.namespace}`,
    metadata: {
      NAME: pod,
      NAMESPACE: w.namespace,
      WORKLOAD_NAME: w.workload,
      CLUSTER_ID: w.cluster ?? "Kubernetes",
      OWNER: `kubernetes://apis/apps/v1/namespaces/${w.namespace}/deployments/${w.workload}`,
      LABELS: {
        app: w.app,
        version: w.version,
        "service.istio.io/canonical-name": w.app,
        "service.istio.io/canonical-revision": w.version,
      },
      ISTIO_VERSION: "1.28.0",
    },
  };
}

export interface ServiceRef {
  name: string;
  namespace: string;
}

export function serviceHost(s: ServiceRef): string {
  return `${s.name}.${s.namespace}.svc.cluster.local`;
}

/** A cluster with istiod's `filter_metadata.istio.services` and, optionally, endpoint workload labels. */
export function serviceCluster(name: string, port: number, service: ServiceRef | null, endpointWorkload?: Workload): any {
  const cluster = staticCluster(name, port);
  if (service) {
    cluster.metadata = { filter_metadata: { istio: { services: [{ host: serviceHost(service), name: service.name, namespace: service.namespace }] } } };
  }
  if (endpointWorkload) {
    const w = endpointWorkload;
    cluster.load_assignment.endpoints[0].lb_endpoints[0].metadata = {
      filter_metadata: { istio: { workload: `${w.workload};${w.namespace};${w.app};${w.version};${w.cluster ?? "Kubernetes"}` } },
    };
  }
  return cluster;
}

const HTTP2_UPSTREAM = {
  "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    explicit_http_config: { http2_protocol_options: {} },
  },
};

export interface SidecarOptions {
  workload: Workload;
  /** Where the inbound listener forwards (the app's port); omit for a client-only sidecar. */
  appPort?: number;
  /** Services this sidecar calls: an outbound listener per entry, forwarding to `port`. */
  outbound?: Array<{ service: ServiceRef; port: number; endpointWorkload?: Workload; http2?: boolean }>;
  plugin?: WasmFilterOptions;
  concurrency?: number;
  /** More clusters, e.g. a Zipkin collector the plugin reports to. */
  clusters?: any[];
}

export interface Sidecar {
  envoy: Envoy;
  inboundPort: number;
  /** Outbound listener port per service name. */
  outboundPorts: Record<string, number>;
}

export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const listeners = [];
  const clusters = [];
  const outboundPorts: Record<string, number> = {};
  let inboundPort = 0;
  const name = `${opts.workload.workload}.${opts.workload.namespace}`;
  if (opts.appPort !== undefined) {
    inboundPort = await freePort();
    const cluster = `inbound|${opts.appPort}||`;
    listeners.push(httpListener({ name: "virtualInbound", port: inboundPort, direction: "INBOUND", cluster, filters: [wasmHttpFilter(opts.plugin)] }));
    clusters.push(serviceCluster(cluster, opts.appPort, { name: opts.workload.app, namespace: opts.workload.namespace }));
  }
  for (const o of opts.outbound ?? []) {
    const port = await freePort();
    const cluster = `outbound|80||${serviceHost(o.service)}`;
    outboundPorts[o.service.name] = port;
    listeners.push(httpListener({ name: `outbound_${o.service.name}`, port, direction: "OUTBOUND", cluster, filters: [wasmHttpFilter(opts.plugin)] }));
    const c = serviceCluster(cluster, o.port, o.service, o.endpointWorkload);
    if (o.http2) c.typed_extension_protocol_options = HTTP2_UPSTREAM;
    clusters.push(c);
  }
  clusters.push(...(opts.clusters ?? []));
  const envoy = await startEnvoy({ name, node: sidecarNode(opts.workload), listeners, clusters, concurrency: opts.concurrency });
  return { envoy, inboundPort, outboundPorts };
}
