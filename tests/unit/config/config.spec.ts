import { parseConfig, parseDurationMs, ReporterMode } from "../../../assembly/config/config";

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

describe("metrics[] and definitions[]", () => {
  it("plans Istio's label layout: overrides in place, added labels sorted after the standard ones", () => {
    const r = parseConfig(
      '{"metrics": [{"name": "requests_total", "dimensions": {"z_tier": "request.headers[\'x-tier\'] | \'none\'", "a_method": "request.method", "destination_service": "request.host"}, "tags_to_remove": ["response_flags"]}]}',
    );
    expect(r.error).toBe("");
    const plan = r.config!.httpPlan;
    expect(plan.expressions.length).toBe(3);
    const requests = plan.families[0];
    expect(requests.name).toBe("requests_total");
    const names = requests.labelNames;
    expect(names.length).toBe(25 - 1 + 2);
    expect(names.includes("response_flags")).toBe(false);
    expect(names[names.length - 2]).toBe("a_method");
    expect(names[names.length - 1]).toBe("z_tier");
    // destination_service keeps its place but reads the expression's slot
    const ds = names.indexOf("destination_service");
    expect(ds).toBe(14);
    expect(requests.slots[ds]).toBeGreaterThanOrEqual(25);
    // the other families are untouched
    expect(plan.families[1].labelNames.length).toBe(25);
    expect(r.config!.tcpPlan.families[0].labelNames.length).toBe(23);
  });

  it("the standard labels do not end one another", () => {
    expect(parseConfig("{}").error).toBe("");
  });

  it("applies an unnamed entry to every metric, and drop", () => {
    const r = parseConfig('{"metrics": [{"dimensions": {"upstream_cluster": "xds.cluster_name"}}, {"name": "request_bytes", "drop": true}]}');
    expect(r.error).toBe("");
    const plan = r.config!.httpPlan;
    for (let i = 0; i < 4; i++) expect(plan.families[i].labelNames.includes("upstream_cluster")).toBe(true);
    expect(plan.families[2].dropped).toBe(true);
    expect(plan.families[0].dropped).toBe(false);
    expect(plan.expressions.length).toBe(1);
    expect(r.config!.tcpPlan.families[3].labelNames.includes("upstream_cluster")).toBe(true);
  });

  it("adds custom definitions as HTTP families named istio_<name>, with only the labels added to them (as Istio)", () => {
    const r = parseConfig('{"definitions": [{"name": "upstream_attempts", "value": "upstream.request_attempt_count", "type": "HISTOGRAM"}], "metrics": [{"name": "upstream_attempts", "dimensions": {"source_principal": "\'x\'"}}, {"dimensions": {"reporter": "\'proxy\'"}}]}');
    expect(r.error).toBe("");
    const f = r.config!.httpPlan.families[4];
    expect(f.statName).toBe("istio_upstream_attempts");
    expect(f.type).toBe(2);
    expect(f.labelNames.join(",")).toBe("reporter,source_principal");
    expect(r.config!.httpPlan.families[0].labelNames.length).toBe(25);
  });

  it("refuses bad metric configuration naming the field", () => {
    expect(refusal('{"metrics": [{"dimensions": {"bad-tag": "request.host"}}]}')).toBe(
      "field 'metrics[0].dimensions.bad-tag' (offset 40): not a valid label name",
    );
    expect(refusal('{"metrics": "requests_total"}')).toBe("field 'metrics' (offset 12): expected an array, got string");
    expect(refusal('{"metrics": [{"dimensions": {"tier": 5}}]}')).toBe(
      "field 'metrics[0].dimensions.tier' (offset 37): expected an expression string, got number",
    );
    expect(refusal('{"metrics": [{"dimensions": "tier"}]}')).toBe(
      "field 'metrics[0].dimensions' (offset 28): expected an object of tag: expression, got string",
    );
    expect(refusal('{"metrics": [{"tags_to_remove": "reporter"}]}')).toBe(
      "field 'metrics[0].tags_to_remove' (offset 32): expected an array of label names, got string",
    );
    expect(refusal('{"disable_host_header_fallback": "yes"}')).toBe(
      "field 'disable_host_header_fallback' (offset 33): expected a boolean, got string",
    );
    expect(refusal('{"disable_host_header_fallback": {}}')).toBe(
      "field 'disable_host_header_fallback' (offset 33): expected a boolean, got object",
    );
    expect(refusal('{"reporter": 5}')).toBe(
      "field 'reporter' (offset 13): unknown reporter '5' (expected UNSPECIFIED, SERVER_GATEWAY, source, destination or waypoint)",
    );
    expect(refusal('{"reporter": {}}')).toBe("field 'reporter' (offset 13): expected a string, got object");
    expect(refusal('{"definitions": [{"name": "x", "value": "1", "type": 7}]}')).toBe(
      "field 'definitions[0].type' (offset 53): expected COUNTER, GAUGE or HISTOGRAM",
    );
    expect(refusal('{"metrics": [{"dimensions": {"d": "request.host"}}]}')).toBe(
      "field 'metrics': in istio_requests_total, label 'd' is the end of label 'source_workload', which Envoy's tag extraction cannot tell apart; choose another name",
    );
    expect(refusal('{"metrics": [{"drop": "yes"}]}')).toBe("field 'metrics[0].drop' (offset 22): expected a boolean, got string");
    expect(refusal('{"metrics": {}}')).toBe("field 'metrics' (offset 12): expected an array, got object");
    expect(refusal('{"definitions": [{"name": "x", "value": "1", "type": "SUMMARY"}]}')).toBe(
      "field 'definitions[0].type' (offset 53): expected COUNTER, GAUGE or HISTOGRAM",
    );
    expect(refusal('{"tcp_reporting_duration": "5 s"}')).toBe(
      "field 'tcp_reporting_duration' (offset 27): expected a duration from \"100ms\" to \"1h\", such as \"5s\"",
    );
  });

  it("accepts what Istio's protobuf JSON parsing accepts", () => {
    // Istio's own tests send the bool as a string.
    expect(parseConfig('{"disable_host_header_fallback": "true"}').config!.disableHostHeaderFallback).toBe(true);
    expect(parseConfig('{"disable_host_header_fallback": "false"}').config!.disableHostHeaderFallback).toBe(false);
    expect(parseConfig('{"disableHostHeaderFallback": true}').config!.disableHostHeaderFallback).toBe(true);
    expect(parseConfig('{"reporter": 1}').config!.reporter).toBe(ReporterMode.Waypoint);
    expect(parseConfig('{"reporter": 0}').config!.reporter).toBe(ReporterMode.Auto);
    expect(parseConfig('{"tcpReportingDuration": "1s"}').config!.tcpReportingMs).toBe(1000);
    expect(parseConfig('{"tcp_reporting_duration": "0.5s"}').config!.tcpReportingMs).toBe(500);
    expect(parseConfig('{"max_series": "50"}').config!.maxSeries).toBe(50);
    expect(parseConfig('{"max_series": 5e1}').config!.maxSeries).toBe(50);
    expect(parseConfig('{"metrics": null, "reporter": null, "disable_host_header_fallback": null}').error).toBe("");
    expect(parseConfig('{"rotation_interval": "0s", "graceful_deletion_interval": "300s"}').error).toBe("");
    const r = parseConfig('{"definitions": [{"name": "custom", "value": "1", "type": 2}], "metrics": [{"name": "requests_total", "tagsToRemove": ["response_flags"], "drop": "false"}, {"name": "request_bytes", "drop": "true"}]}');
    expect(r.error).toBe("");
    const plan = r.config!.httpPlan;
    expect(plan.families[4].type).toBe(2);
    expect(plan.families[0].labelNames.includes("response_flags")).toBe(false);
    expect(plan.families[0].dropped).toBe(false);
    expect(plan.families[2].dropped).toBe(true);
  });

  it("keeps the rest of the configuration when a dimension is bad, as Istio does, with a warning each", () => {
    const r = parseConfig('{"metrics": [{"name": "requests_total", "dimensions": {' +
      '"destination_app": "cannot _ parse | 3", "destination_workload": "cannot_evaluate", "extra": "(", ' +
      '"source_workload": "\'_\' + xds.node.metadata[\'WORKLOAD_NAME\']"}, "tags_to_remove": ["no_such_label"]}, ' +
      '{"name": "requests_totl"}], "definitions": [{"name": "requests_total", "value": "1"}, {"name": "bad", "value": "1 +"}, {"name": "ok", "value": "1"}]}');
    expect(r.error).toBe("");
    const requests = r.config!.httpPlan.families[0];
    // Does not parse: a standard label is removed, an added one never appears.
    expect(requests.labelNames.includes("destination_app")).toBe(false);
    expect(requests.labelNames.includes("extra")).toBe(false);
    // Parses but cannot be evaluated: the label stays, and reads as missing (unknown).
    expect(requests.labelNames.includes("destination_workload")).toBe(true);
    expect(requests.labelNames.length).toBe(24);
    expect(r.config!.httpPlan.families[1].labelNames.includes("destination_app")).toBe(true);
    // Definitions of a standard metric or with an unparsable value are skipped.
    expect(r.config!.httpPlan.families.length).toBe(5);
    expect(r.config!.httpPlan.families[4].name).toBe("ok");
    const w = r.warnings.join("\n");
    expect(w).toBe([
      "field 'definitions[0].name': re-defining the standard metric 'requests_total' is not allowed, skipped",
      "field 'definitions[1].value': expression does not parse, dropped: unexpected end of expression at 3",
      "field 'metrics[0].dimensions.destination_app': expression does not parse, dropped: unexpected '_' at 7",
      "field 'metrics[0].dimensions.destination_workload': expression cannot be evaluated, reports unknown: unknown attribute root 'cannot_evaluate' at 0",
      "field 'metrics[0].dimensions.extra': expression does not parse, dropped: unexpected end of expression at 1",
      "field 'metrics[0].tags_to_remove[0]': 'no_such_label' is not a standard label, ignored",
      "field 'metrics[1].name': no metric named 'requests_totl', the entry applies to nothing",
    ].join("\n"));
  });

  it("parses durations", () => {
    expect(parseDurationMs("5s")).toBe(5000.0);
    expect(parseDurationMs("1.5s")).toBe(1500.0);
    expect(parseDurationMs("250ms")).toBe(250.0);
    expect(parseDurationMs("2m")).toBe(120000.0);
    expect(parseDurationMs("1h")).toBe(3600000.0);
    expect(parseDurationMs("5")).toBe(-1.0);
    expect(parseDurationMs("s")).toBe(-1.0);
    expect(parseDurationMs("1..5s")).toBe(-1.0);
  });
});

describe("tracing", () => {
  it("has trace context on by default and no span reporting", () => {
    const t = parseConfig("{}").config!.tracing;
    expect(t.enabled).toBe(true);
    expect(t.samplingPercentage).toBe(1.0);
    expect(t.zipkin.cluster).toBe("");
    expect(t.writeW3c && t.writeB3Multi && !t.writeB3Single).toBe(true);
  });

  it("reads the collector, formats, batching and custom tags", () => {
    const r = parseConfig(
      '{"tracing": {"random_sampling_percentage": 12.5, "zipkin": {"cluster": "zipkin", "timeout": "500ms"}, "write_formats": ["b3"], "read_formats": ["b3multi", "w3c"], "flush_interval": "2s", "custom_tags": {"t": {"header": {"name": "X-User", "default_value": "anon"}}, "e": {"environment": {"name": "POD"}}}}}',
    );
    expect(r.error).toBe("");
    const t = r.config!.tracing;
    expect(t.samplingPercentage).toBe(12.5);
    expect(t.zipkin.cluster).toBe("zipkin");
    expect(t.zipkin.authority).toBe("zipkin");
    expect(t.zipkin.timeoutMs).toBe(500);
    expect(t.writeB3Single && !t.writeW3c && !t.writeB3Multi).toBe(true);
    expect(t.readFormats.length).toBe(2);
    expect(t.flushIntervalMs).toBe(2000);
    expect(t.customTags[0].source).toBe("x-user");
    expect(t.customTags[0].defaultValue).toBe("anon");
  });

  it("reads the OTLP collector beside Zipkin, with defaults and extra headers", () => {
    const r = parseConfig('{"tracing": {"zipkin": {"cluster": "zipkin"}, "otlp": {"cluster": "jaeger", "headers": {"X-Scope-OrgID": "tenant-1"}}}}');
    expect(r.error).toBe("");
    const t = r.config!.tracing;
    expect(t.zipkin.cluster).toBe("zipkin");
    expect(t.otlp.cluster).toBe("jaeger");
    expect(t.otlp.path).toBe("/v1/traces");
    expect(t.otlp.authority).toBe("jaeger");
    expect(t.otlp.timeoutMs).toBe(2000);
    expect(t.otlp.headerNames[0]).toBe("x-scope-orgid");
    expect(t.otlp.headerValues[0]).toBe("tenant-1");
    const full = parseConfig('{"tracing": {"otlp": {"cluster": "c", "path": "/otlp/v1/traces", "authority": "tempo:4318", "timeout": "750ms"}}}').config!.tracing;
    expect(full.otlp.path).toBe("/otlp/v1/traces");
    expect(full.otlp.authority).toBe("tempo:4318");
    expect(full.otlp.timeoutMs).toBe(750);
    expect(parseConfig("{}").config!.tracing.otlp.cluster).toBe("");
    const zipkin = parseConfig('{"tracing": {"zipkin": {"cluster": "z", "headers": {"Authorization": "Bearer x"}}}}').config!.tracing.zipkin;
    expect(zipkin.headerNames[0]).toBe("authorization");
    expect(zipkin.path).toBe("/api/v2/spans");
  });

  it("refuses a bad collector section naming the field", () => {
    expect(refusal('{"tracing": {"otlp": {"path": "/v1/traces"}}}')).toBe("field 'tracing.otlp.cluster' (offset 21): missing");
    expect(refusal('{"tracing": {"otlp": []}}')).toBe("field 'tracing.otlp' (offset 21): expected an object, got array");
    expect(refusal('{"tracing": {"otlp": {"cluster": "c", "path": "v1/traces"}}}')).toBe(
      "field 'tracing.otlp.path' (offset 46): expected a path starting with /",
    );
    expect(refusal('{"tracing": {"otlp": {"cluster": "c", "timeout": "2 weeks"}}}')).toBe(
      "field 'tracing.otlp.timeout' (offset 49): expected a duration such as \"1s\" or \"500ms\", within limits",
    );
    expect(refusal('{"tracing": {"otlp": {"cluster": 7}}}')).toBe("field 'tracing.otlp.cluster' (offset 33): expected a string, got number");
    expect(refusal('{"tracing": {"otlp": {"cluster": "c", "compression": "gzip"}}}')).toBe(
      "field 'tracing.otlp.compression' (offset 53): unknown field",
    );
    expect(refusal('{"tracing": {"otlp": {"cluster": "c", "headers": {"bad name": "x"}}}}')).toBe(
      "field 'tracing.otlp.headers.bad name' (offset 62): not a valid HTTP header name",
    );
    expect(refusal('{"tracing": {"otlp": {"cluster": "c", "headers": {":path": "/x"}}}}')).toBe(
      "field 'tracing.otlp.headers.:path' (offset 59): not a valid HTTP header name",
    );
    expect(refusal('{"tracing": {"otlp": {"cluster": "c", "headers": {"Content-Type": "application/json"}}}}')).toBe(
      "field 'tracing.otlp.headers.Content-Type' (offset 66): set by the plugin or Envoy, not configurable",
    );
    expect(refusal('{"tracing": {"otlp": {"cluster": "c", "headers": {"x-key": "a\\r\\nb"}}}}')).toBe(
      "field 'tracing.otlp.headers.x-key' (offset 59): control characters are not allowed in a header value",
    );
    expect(refusal('{"tracing": {"zipkin": {"cluster": "c", "headers": {"Host": "x"}}}}')).toBe(
      "field 'tracing.zipkin.headers.Host' (offset 60): set by the plugin or Envoy, not configurable",
    );
    expect(refusal('{"tracing": {"otlp": {"cluster": "c", "headers": {"x-key": 1}}}}')).toBe(
      "field 'tracing.otlp.headers.x-key' (offset 59): expected a string, got number",
    );
  });

  it("refuses bad tracing configuration naming the field", () => {
    expect(refusal('{"tracing": {"random_sampling_percentage": 101}}')).toBe(
      "field 'tracing.random_sampling_percentage' (offset 43): expected a number from 0 to 100",
    );
    expect(refusal('{"tracing": {"zipkin": {"path": "/x"}}}')).toBe("field 'tracing.zipkin.cluster' (offset 23): missing");
    expect(refusal('{"tracing": {"write_formats": ["jaeger"]}}')).toBe(
      "field 'tracing.write_formats[0]' (offset 31): expected w3c, b3 or b3multi, each once",
    );
    expect(refusal('{"tracing": {"tracestate_key": "Bad Key"}}')).toBe(
      "field 'tracing.tracestate_key' (offset 31): not a valid W3C tracestate key",
    );
    expect(refusal('{"tracing": {"custom_tags": {"t": {"cookie": {"name": "x"}}}}}')).toBe(
      "field 'tracing.custom_tags.t' (offset 34): unknown tag source 'cookie' (literal, header, environment, metadata)",
    );
    expect(refusal('{"tracing": {"max_batch_spans": 50, "max_buffered_spans": 10}}')).toBe(
      "field 'tracing.max_batch_spans' (offset 12): must not exceed max_buffered_spans",
    );
    expect(refusal('{"tracing": {"sample": 1}}')).toBe("field 'tracing.sample' (offset 23): unknown field");
  });
});
