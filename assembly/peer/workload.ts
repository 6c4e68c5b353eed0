// A workload's identity as Istio's metadata exchange carries it: the fields the standard labels
// need, read from node metadata (local), from the peer's x-envoy-peer-metadata Struct, or from
// the endpoint label `istio.workload` that istiod puts on cluster endpoints.
import { PbValue } from "./struct";

export const CANONICAL_NAME_LABEL = "service.istio.io/canonical-name";
export const CANONICAL_REVISION_LABEL = "service.istio.io/canonical-revision";

export class WorkloadInfo {
  name: string = "";
  namespace: string = "";
  workloadName: string = "";
  clusterId: string = "";
  owner: string = "";
  app: string = "";
  version: string = "";
  canonicalService: string = "";
  canonicalRevision: string = "";
}

function stringOr(s: PbValue | null, key: string): string {
  if (s === null) return "";
  const v = s.getString(key);
  return v === null ? "" : v;
}

/** Reads the Struct a peer sends in x-envoy-peer-metadata (Istio's field names). */
export function workloadFromStruct(s: PbValue): WorkloadInfo {
  const w = new WorkloadInfo();
  w.name = stringOr(s, "NAME");
  w.namespace = stringOr(s, "NAMESPACE");
  w.workloadName = stringOr(s, "WORKLOAD_NAME");
  w.clusterId = stringOr(s, "CLUSTER_ID");
  w.owner = stringOr(s, "OWNER");
  const labels = s.get("LABELS");
  w.app = stringOr(labels, "app");
  w.version = stringOr(labels, "version");
  w.canonicalService = stringOr(labels, CANONICAL_NAME_LABEL);
  w.canonicalRevision = stringOr(labels, CANONICAL_REVISION_LABEL);
  return w;
}

/**
 * The Struct this proxy sends about itself: the same reduced field set as Istio's native
 * metadata exchange (NAME, NAMESPACE, WORKLOAD_NAME, CLUSTER_ID, OWNER, and LABELS with app,
 * version and the canonical service labels); empty fields are left out.
 */
export function workloadToStruct(w: WorkloadInfo): PbValue {
  const s = PbValue.struct();
  putIfSet(s, "NAME", w.name);
  putIfSet(s, "NAMESPACE", w.namespace);
  putIfSet(s, "WORKLOAD_NAME", w.workloadName);
  putIfSet(s, "CLUSTER_ID", w.clusterId);
  putIfSet(s, "OWNER", w.owner);
  const labels = PbValue.struct();
  putIfSet(labels, "app", w.app);
  putIfSet(labels, "version", w.version);
  putIfSet(labels, CANONICAL_NAME_LABEL, w.canonicalService);
  putIfSet(labels, CANONICAL_REVISION_LABEL, w.canonicalRevision);
  s.set("LABELS", labels);
  return s;
}

function putIfSet(s: PbValue, key: string, value: string): void {
  if (value.length > 0) s.set(key, PbValue.string(value));
}

/**
 * Parses istiod's endpoint label `workload;namespace;canonical-service;canonical-revision;cluster`,
 * the fallback identity of an upstream that did not answer the metadata exchange.
 */
export function workloadFromEndpointLabel(label: string): WorkloadInfo | null {
  const parts = label.split(";");
  if (parts.length < 4 || parts[0].length == 0) return null;
  const w = new WorkloadInfo();
  w.workloadName = parts[0];
  w.namespace = parts[1];
  w.canonicalService = parts[2];
  w.canonicalRevision = parts[3];
  if (parts.length >= 5) w.clusterId = parts[4];
  return w;
}

/**
 * The namespace in a SPIFFE identity `spiffe://<trust-domain>/ns/<namespace>/sa/<account>`, as
 * Istio reads it from a peer certificate's URI SAN; "" when the principal has none. Istio
 * prefers it to the namespace a peer claims in its metadata.
 */
export function spiffeNamespace(principal: string): string {
  if (!principal.startsWith("spiffe://")) return "";
  const at = principal.indexOf("/ns/", 9);
  if (at < 0) return "";
  const start = at + 4;
  const end = principal.indexOf("/", start);
  return end < 0 ? principal.substring(start) : principal.substring(start, end);
}

/**
 * A field of a peer as Istio's peer-metadata filter exposes it in Envoy's filter state
 * (`filter_state.upstream_peer.<field>` / `downstream_peer`, istio/proxy metadata_object.h):
 * namespace, cluster, service (canonical name), revision (canonical revision), app, version,
 * workload, name. null for another field or an empty value (Istio: absent).
 */
export function peerField(w: WorkloadInfo, field: string): string | null {
  let v = "";
  if (field == "namespace") v = w.namespace;
  else if (field == "cluster") v = w.clusterId;
  else if (field == "service") v = w.canonicalService;
  else if (field == "revision") v = w.canonicalRevision;
  else if (field == "app") v = w.app;
  else if (field == "version") v = w.version;
  else if (field == "workload") v = w.workloadName;
  else if (field == "name") v = w.name;
  return v.length > 0 ? v : null;
}
