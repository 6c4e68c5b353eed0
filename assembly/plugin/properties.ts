// Envoy attribute paths, encoded once at start-up (an allocation, not a host call).
// Envoy 1.33+ serves listener, cluster, route and node attributes under `xds.*`.
import { propertyPath } from "../sdk/host";

export const PLUGIN_ROOT_ID = propertyPath(["plugin_root_id"]);
export const NODE_ID = propertyPath(["xds", "node", "id"]);
export const LISTENER_DIRECTION = propertyPath(["xds", "listener_direction"]);
export const CLUSTER_NAME = propertyPath(["xds", "cluster_name"]);
export const ROUTE_NAME = propertyPath(["xds", "route_name"]);
export const CLUSTER_SERVICE_HOST = propertyPath(["xds", "cluster_metadata", "filter_metadata", "istio", "services", "0", "host"]);
export const CLUSTER_SERVICE_NAME = propertyPath(["xds", "cluster_metadata", "filter_metadata", "istio", "services", "0", "name"]);
export const CLUSTER_SERVICE_NAMESPACE = propertyPath(["xds", "cluster_metadata", "filter_metadata", "istio", "services", "0", "namespace"]);
export const CLUSTER_EXTERNAL = propertyPath(["xds", "cluster_metadata", "filter_metadata", "istio", "external"]);
export const UPSTREAM_HOST_WORKLOAD = propertyPath(["xds", "upstream_host_metadata", "filter_metadata", "istio", "workload"]);

export const RESPONSE_CODE = propertyPath(["response", "code"]);
export const RESPONSE_FLAGS = propertyPath(["response", "flags"]);
export const RESPONSE_GRPC_STATUS = propertyPath(["response", "grpc_status"]);
export const REQUEST_DURATION = propertyPath(["request", "duration"]);
export const REQUEST_TIME = propertyPath(["request", "time"]);
export const SOURCE_ADDRESS = propertyPath(["source", "address"]);
export const UPSTREAM_ADDRESS = propertyPath(["upstream", "address"]);
export const REQUEST_TOTAL_SIZE = propertyPath(["request", "total_size"]);
export const RESPONSE_TOTAL_SIZE = propertyPath(["response", "total_size"]);

export const UPSTREAM_PEER_SAN = propertyPath(["upstream", "uri_san_peer_certificate"]);
export const UPSTREAM_LOCAL_SAN = propertyPath(["upstream", "uri_san_local_certificate"]);
export const CONNECTION_ID = propertyPath(["connection", "id"]);
export const CONNECTION_MTLS = propertyPath(["connection", "mtls"]);
export const CONNECTION_PEER_SAN = propertyPath(["connection", "uri_san_peer_certificate"]);
export const CONNECTION_LOCAL_SAN = propertyPath(["connection", "uri_san_local_certificate"]);

export function nodeMetadata(key: string): ArrayBuffer {
  return propertyPath(["xds", "node", "metadata", key]);
}

export function nodeLabel(key: string): ArrayBuffer {
  return propertyPath(["xds", "node", "metadata", "LABELS", key]);
}

/** Envoy's config.core.v3.TrafficDirection values, as xds.listener_direction reports them. */
export const DIRECTION_OUTBOUND: i64 = 2;
