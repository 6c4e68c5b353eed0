// The local workload's identity, read once per configure from Envoy's node metadata (the keys
// istio-agent sets: NAME, NAMESPACE, WORKLOAD_NAME, CLUSTER_ID, OWNER, LABELS).
import { getPropertyString } from "../sdk/host";
import { CANONICAL_NAME_LABEL, CANONICAL_REVISION_LABEL, WorkloadInfo, workloadToStruct } from "../peer/workload";
import { encodeStruct } from "../peer/struct";
import { base64Encode } from "../peer/base64";
import { NODE_ID, nodeLabel, nodeMetadata } from "./properties";

function read(path: ArrayBuffer): string {
  const v = getPropertyString(path);
  return v === null ? "" : v;
}

export class LocalIdentity {
  workload: WorkloadInfo = new WorkloadInfo();
  nodeId: string = "";
  /** Values this proxy sends as x-envoy-peer-metadata and -id, encoded once. */
  exchangeValue: ArrayBuffer = new ArrayBuffer(0);
  exchangeId: ArrayBuffer = new ArrayBuffer(0);
}

export function readLocalIdentity(): LocalIdentity {
  const id = new LocalIdentity();
  const w = id.workload;
  w.name = read(nodeMetadata("NAME"));
  w.namespace = read(nodeMetadata("NAMESPACE"));
  w.workloadName = read(nodeMetadata("WORKLOAD_NAME"));
  w.clusterId = read(nodeMetadata("CLUSTER_ID"));
  w.owner = read(nodeMetadata("OWNER"));
  w.app = read(nodeLabel("app"));
  w.version = read(nodeLabel("version"));
  w.canonicalService = read(nodeLabel(CANONICAL_NAME_LABEL));
  w.canonicalRevision = read(nodeLabel(CANONICAL_REVISION_LABEL));
  id.nodeId = read(NODE_ID);
  id.exchangeValue = String.UTF8.encode(base64Encode(encodeStruct(workloadToStruct(w))));
  id.exchangeId = String.UTF8.encode(id.nodeId);
  return id;
}
