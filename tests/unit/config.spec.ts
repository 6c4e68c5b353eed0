import { parseConfig, ReporterMode } from "../../assembly/config/config";

function refusal(text: string): string {
  const r = parseConfig(text);
  expect(r.config).toBeNull(text);
  return r.error;
}

describe("parseConfig", () => {
  it("gives defaults for an empty configuration", () => {
    for (let i = 0; i < 3; i++) {
      const text = ["", "  ", "{}"][i];
      const r = parseConfig(text);
      expect(r.error).toBe("");
      expect(r.config!.reporter).toBe(ReporterMode.Auto);
      expect(r.config!.maxSeries).toBe(10000);
    }
  });

  it("reads the reporter in Istio's and in plain form", () => {
    expect(parseConfig('{"reporter": "SERVER_GATEWAY"}').config!.reporter).toBe(ReporterMode.Waypoint);
    expect(parseConfig('{"reporter": "UNSPECIFIED"}').config!.reporter).toBe(ReporterMode.Auto);
    expect(parseConfig('{"reporter": "source"}').config!.reporter).toBe(ReporterMode.Source);
    expect(parseConfig('{"reporter": "destination"}').config!.reporter).toBe(ReporterMode.Destination);
    expect(parseConfig('{"max_series": 50}').config!.maxSeries).toBe(50);
  });

  it("accepts the fields Istio reserved, without effect", () => {
    expect(parseConfig('{"debug": "false", "stat_prefix": "istio"}').error).toBe("");
  });

  it("refuses bad input naming the field and its offset", () => {
    expect(refusal('{"reporter": 5}')).toBe("field 'reporter' (offset 13): expected a string, got number");
    expect(refusal('{"reporter": "sideways"}')).toBe(
      "field 'reporter' (offset 13): unknown reporter 'sideways' (expected UNSPECIFIED, SERVER_GATEWAY, source, destination or waypoint)",
    );
    expect(refusal('{"max_series": 0}')).toBe("field 'max_series' (offset 15): expected an integer from 1 to 1000000");
    expect(refusal('{"max_series": 1.5}')).toBe("field 'max_series' (offset 15): expected an integer from 1 to 1000000");
    expect(refusal('{"bogus": true}')).toBe("field 'bogus' (offset 10): unknown field");
    expect(refusal("[]")).toBe("field '<root>' (offset 0): expected an object, got array");
    expect(refusal('{"reporter": ')).toBe("malformed JSON at offset 13: unexpected end of input");
  });
});
