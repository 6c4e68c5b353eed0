import { peerField, workloadFromEndpointLabel, WorkloadInfo } from "../../../assembly/peer/workload";

describe("peerField", () => {
  it("answers the fields of Istio's peer objects in filter_state", () => {
    const w = new WorkloadInfo();
    w.name = "ratings-v1-84975bc778-pxz2w";
    w.namespace = "default";
    w.workloadName = "ratings-v1";
    w.clusterId = "server-cluster";
    w.app = "ratings";
    w.version = "v1";
    w.canonicalService = "ratings";
    w.canonicalRevision = "version-1";
    expect(peerField(w, "namespace")).toBe("default");
    expect(peerField(w, "cluster")).toBe("server-cluster");
    expect(peerField(w, "service")).toBe("ratings");
    expect(peerField(w, "revision")).toBe("version-1");
    expect(peerField(w, "app")).toBe("ratings");
    expect(peerField(w, "version")).toBe("v1");
    expect(peerField(w, "workload")).toBe("ratings-v1");
    expect(peerField(w, "name")).toBe("ratings-v1-84975bc778-pxz2w");
  });

  it("has no value for an unknown field or an empty one", () => {
    const w = workloadFromEndpointLabel("ratings-v1;default;ratings;version-1")!;
    expect(peerField(w, "cluster")).toBeNull();
    expect(peerField(w, "app")).toBeNull();
    expect(peerField(w, "labels")).toBeNull();
    expect(peerField(w, "")).toBeNull();
    expect(peerField(w, "service")).toBe("ratings");
  });
});
