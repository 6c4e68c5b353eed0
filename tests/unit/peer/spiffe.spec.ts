import { spiffeNamespace } from "../../../assembly/peer/workload";

describe("spiffeNamespace", () => {
  it("reads the namespace of an Istio workload identity", () => {
    expect(spiffeNamespace("spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings")).toBe("bookinfo");
  });
  it("takes the rest when nothing follows the namespace", () => {
    expect(spiffeNamespace("spiffe://td/ns/default")).toBe("default");
  });
  it("finds nothing in a principal without /ns/ or in a non-SPIFFE name", () => {
    expect(spiffeNamespace("spiffe://cluster.local/sa/x")).toBe("");
    expect(spiffeNamespace("unknown")).toBe("");
    expect(spiffeNamespace("https://example.com/ns/a/sa/b")).toBe("");
    expect(spiffeNamespace("")).toBe("");
  });
  it("does not mistake the trust domain for a namespace", () => {
    expect(spiffeNamespace("spiffe://ns/sa/x")).toBe("");
  });
});
