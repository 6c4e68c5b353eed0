// Istio's standard label set, in the order of Istio's stats plugin (peer labels first, then the
// TCP labels, then the HTTP-only ones), so one array serves HTTP (25) and TCP (23) metrics.

export const enum Label {
  Reporter = 0,
  SourceWorkload,
  SourceWorkloadNamespace,
  SourcePrincipal,
  SourceApp,
  SourceVersion,
  SourceCanonicalService,
  SourceCanonicalRevision,
  SourceCluster,
  DestinationWorkload,
  DestinationWorkloadNamespace,
  DestinationPrincipal,
  DestinationApp,
  DestinationVersion,
  DestinationService,
  DestinationServiceName,
  DestinationServiceNamespace,
  DestinationCanonicalService,
  DestinationCanonicalRevision,
  DestinationCluster,
  RequestProtocol,
  ResponseFlags,
  ConnectionSecurityPolicy,
  ResponseCode,
  GrpcResponseStatus,
}

export const HTTP_LABEL_COUNT = 25;
export const TCP_LABEL_COUNT = 23;

export const LABEL_NAMES: StaticArray<string> = [
  "reporter",
  "source_workload",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_canonical_service",
  "source_canonical_revision",
  "source_cluster",
  "destination_workload",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_service",
  "destination_service_name",
  "destination_service_namespace",
  "destination_canonical_service",
  "destination_canonical_revision",
  "destination_cluster",
  "request_protocol",
  "response_flags",
  "connection_security_policy",
  "response_code",
  "grpc_response_status",
];

export const UNKNOWN = "unknown";
