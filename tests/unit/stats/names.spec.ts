import { encodeTags, sanitizeLabelValue } from "../../../assembly/stats/names";

describe("stat name encoding", () => {
  it("encodes labels in Istio's =.= / ;.; form", () => {
    const names: string[] = ["reporter", "response_code"];
    const values: StaticArray<string> = ["source", "200"];
    expect(encodeTags(names, values, 2) + "istio_requests_total").toBe(
      "reporter=.=source;.;response_code=.=200;.;istio_requests_total",
    );
    expect(encodeTags(names, values, 1)).toBe("reporter=.=source;.;");
  });

  it("leaves ordinary values, dots and Unicode untouched", () => {
    expect(sanitizeLabelValue("reviews.default.svc.cluster.local")).toBe("reviews.default.svc.cluster.local");
    expect(sanitizeLabelValue("a=b;c")).toBe("a=b;c");
    expect(sanitizeLabelValue("spiffe://cluster.local/ns/default/sa/x")).toBe("spiffe://cluster.local/ns/default/sa/x");
    expect(sanitizeLabelValue("größe-名前")).toBe("größe-名前");
    expect(sanitizeLabelValue("")).toBe("");
  });

  it("breaks up separators so a value cannot end early or inject a label", () => {
    expect(sanitizeLabelValue("x;.;source_app=.=evil")).toBe("x;_;source_app=_=evil");
    expect(sanitizeLabelValue("tail;.")).toBe("tail;_");
    expect(sanitizeLabelValue(".=head")).toBe("_=head");
    expect(sanitizeLabelValue("line\nbreak\u0000")).toBe("line_break_");
  });
});

describe("sanitizeLabelValue limits", () => {
  it("replaces unpaired surrogates, keeps pairs", () => {
    expect(sanitizeLabelValue("a\ud800b")).toBe("a\ufffdb");
    expect(sanitizeLabelValue("a\udc00")).toBe("a\ufffd");
    expect(sanitizeLabelValue("ok 😀")).toBe("ok 😀");
  });

  it("cuts long values, without leaving half a surrogate pair", () => {
    const long = "x".repeat(1000);
    expect(sanitizeLabelValue(long).length).toBe(256);
    const cutPair = "y".repeat(255) + "😀";
    expect(sanitizeLabelValue(cutPair)).toBe("y".repeat(255) + "\ufffd");
  });

  it("stays linear on 100 KiB of separators", () => {
    const hostile = "=.=".repeat(34000);
    const out = sanitizeLabelValue(hostile);
    expect(out.length).toBe(256);
    expect(out.includes("=.=")).toBe(false);
  });
});
