// Bad configuration, table-driven, through a control plane (LDS) on a listener whose plugin is
// FAIL_CLOSED: every malformed, unknown, mistyped, unparsable or out-of-range configuration is
// refused at configure time with a log line naming the field (or the JSON offset), Envoy rejects
// the update, and the listener keeps serving - and counting - with its previous configuration.
// Empty and huge-but-valid configurations are accepted. A refused static configuration stops
// Envoy from starting under every failure_policy (the policy governs run-time failures only).
// Extends config-refused.test.ts (static, three cases) and config-reload.test.ts (LDS, four).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import {
  eventually, freePort, httpListener, httpRequest, staticCluster, startEnvoy, startUpstream, tcpListener, wasmHttpFilter, wasmNetworkFilter,
  type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";

// [what, configuration text, the refusal after "configuration refused: "]
const REFUSED: Array<[string, string, string]> = [
  ["malformed: trailing comma", '{"reporter": "source",}', "malformed JSON at offset 22: expected a member name"],
  ["malformed: single quotes", "{'reporter': 'source'}", "malformed JSON at offset 1: expected a member name"],
  ["malformed: not JSON", "reporter: source", "malformed JSON at offset 0: unexpected character 'r'"],
  ["malformed: unterminated string", '{"reporter": "sou', "malformed JSON at offset 17: unterminated string"],
  ["malformed: control character", '{"reporter": "a\u0001b"}', "malformed JSON at offset 15: control character in string"],
  ["malformed: bad escape", '{"reporter": "\\q"}', "malformed JSON at offset 15: unknown escape"],
  ["malformed: trailing data", "{} {}", "malformed JSON at offset 3: unexpected trailing characters"],
  ["malformed: NaN", '{"max_series": NaN}', "malformed JSON at offset 15: unexpected character 'N'"],
  ["malformed: duplicate member", '{"reporter": "source", "reporter": "destination"}', "malformed JSON at offset 23: duplicate member 'reporter'"],
  ["malformed: 100000 nested arrays", "[".repeat(100000), "malformed JSON at offset 65: nesting deeper than 64"],
  ["unknown field", '{"max_serie": 5}', "field 'max_serie' (offset 14): unknown field"],
  ["unknown field in metrics[]", '{"metrics": [{"dimension": {}}]}', "field 'metrics[0].dimension' (offset 27): unknown field"],
  ["unknown field in definitions[]", '{"definitions": [{"name": "x", "value": "1", "unit": "ms"}]}', "field 'definitions[0].unit' (offset 53): unknown field"],
  ["unknown field in tracing", '{"tracing": {"sampling": 5}}', "field 'tracing.sampling' (offset 25): unknown field"],
  ["unknown field in tracing.zipkin", '{"tracing": {"zipkin": {"host": "x"}}}', "field 'tracing.zipkin.host' (offset 32): unknown field"],
  ["wrong type: array at the root", "[]", "field '<root>' (offset 0): expected an object, got array"],
  ["wrong type: null at the root", "null", "field '<root>' (offset 0): expected an object, got null"],
  ["wrong type: metrics as an object", '{"metrics": {"name": "x"}}', "field 'metrics' (offset 12): expected an array, got object"],
  ["wrong type: dimensions as an array", '{"metrics": [{"dimensions": ["request.host"]}]}', "field 'metrics[0].dimensions' (offset 28): expected an object of tag: expression, got array"],
  ["wrong type: dimension as a number", '{"metrics": [{"dimensions": {"tier": 5}}]}', "field 'metrics[0].dimensions.tier' (offset 37): expected an expression string, got number"],
  ["wrong type: metrics as a string", '{"metrics": "requests_total"}', "field 'metrics' (offset 12): expected an array, got string"],
  ["wrong type: disable_host_header_fallback as a word", '{"disable_host_header_fallback": "yes"}', "field 'disable_host_header_fallback' (offset 33): expected a boolean, got string"],
  ["wrong type: drop as a number", '{"metrics": [{"drop": 1}]}', "field 'metrics[0].drop' (offset 22): expected a boolean, got number"],
  ["wrong type: tcp_reporting_duration as a number", '{"tcp_reporting_duration": 5}', `field 'tcp_reporting_duration' (offset 27): expected a duration from "100ms" to "1h", such as "5s"`],
  ["wrong type: tracing.enabled as a string", '{"tracing": {"enabled": "yes"}}', "field 'tracing.enabled' (offset 24): expected a boolean, got string"],
  ["out of range: max_series 0", '{"max_series": 0}', "field 'max_series' (offset 15): expected an integer from 1 to 1000000"],
  ["out of range: max_series 1000001", '{"max_series": 1000001}', "field 'max_series' (offset 15): expected an integer from 1 to 1000000"],
  ["out of range: max_series 1e400", '{"max_series": 1e400}', "field 'max_series' (offset 15): expected an integer from 1 to 1000000"],
  ["out of range: tcp_reporting_duration 99ms", '{"tcp_reporting_duration": "99ms"}', `field 'tcp_reporting_duration' (offset 27): expected a duration from "100ms" to "1h", such as "5s"`],
  ["out of range: tcp_reporting_duration 2h", '{"tcp_reporting_duration": "2h"}', `field 'tcp_reporting_duration' (offset 27): expected a duration from "100ms" to "1h", such as "5s"`],
  ["out of range: sampling 101", '{"tracing": {"random_sampling_percentage": 101}}', "field 'tracing.random_sampling_percentage' (offset 43): expected a number from 0 to 100"],
  ["out of range: max_batch_spans 0", '{"tracing": {"max_batch_spans": 0}}', "field 'tracing.max_batch_spans' (offset 32): expected an integer from 1 to 10000"],
  ["bad value: reporter", '{"reporter": "client"}', "field 'reporter' (offset 13): unknown reporter 'client' (expected UNSPECIFIED, SERVER_GATEWAY, source, destination or waypoint)"],
  ["bad value: definition type", '{"definitions": [{"name": "x", "value": "1", "type": "SUMMARY"}]}', "field 'definitions[0].type' (offset 53): expected COUNTER, GAUGE or HISTOGRAM"],
  ["bad value: label name", '{"metrics": [{"dimensions": {"1tier": "request.host"}}]}', "field 'metrics[0].dimensions.1tier' (offset 38): not a valid label name"],
  ["bad value: read_formats repeated", '{"tracing": {"read_formats": ["w3c", "w3c"]}}', "field 'tracing.read_formats[1]' (offset 37): expected w3c, b3 or b3multi, each once"],
  ["huge: 1 MiB under an unknown field", JSON.stringify({ bogus: "x".repeat(1 << 20) }), "field 'bogus' (offset 9): unknown field"],
];

// [what, configuration text]
const ACCEPTED: Array<[string, string]> = [
  ["empty", ""],
  ["whitespace", " \n\t "],
  ["empty object", "{}"],
  ["huge: 1 MiB in a reserved field", JSON.stringify({ stat_prefix: "x".repeat(1 << 20) })],
  ["many definitions", JSON.stringify({ definitions: Array.from({ length: 20 }, (_, i) => ({ name: `def_${i}_total`, value: "1" })) })],
];

// What Istio's stats filter accepts, accepted the same way: [what, configuration text, the
// warning logged after "configuration: ", or "" for none]. Istio parses its PluginConfig with
// protobuf's JSON mapping, drops a dimension whose expression does not parse, reports `unknown`
// for one that cannot be evaluated, and ignores names it does not know, logging each.
const ACCEPTED_AS_ISTIO: Array<[string, string, string]> = [
  ["a bool as a string (Istio's own tests)", '{"disable_host_header_fallback": "true"}', ""],
  ["lowerCamelCase field names", '{"disableHostHeaderFallback": false, "tcpReportingDuration": "1.5s", "metrics": [{"tagsToRemove": ["response_flags"]}]}', ""],
  ["an enum by number", '{"reporter": 1, "definitions": [{"name": "h", "value": "1", "type": 2}]}', ""],
  ["an integer as a string", '{"max_series": "10"}', ""],
  ["null as the default", '{"metrics": null, "reporter": null}', ""],
  ["deprecated durations", '{"rotation_interval": "0s", "graceful_deletion_interval": "300s"}', "field 'rotation_interval': deprecated in Istio, ignored"],
  ["expression that does not parse", `{"metrics": [{"dimensions": {"request_protocol": "request.headers['x'] |"}}]}`, "field 'metrics[0].dimensions.request_protocol': expression does not parse, dropped: unexpected end of expression at 22"],
  ["expression with an unknown root", '{"metrics": [{"dimensions": {"request_protocol": "requests.host"}}]}', "field 'metrics[0].dimensions.request_protocol': expression cannot be evaluated, reports unknown: unknown attribute root 'requests' at 0"],
  ["expression with a type error", `{"metrics": [{"dimensions": {"request_protocol": "response.code == '200'"}}]}`, "field 'metrics[0].dimensions.request_protocol': expression cannot be evaluated, reports unknown: cannot compare int with string at 14"],
  ["expression longer than 1024", JSON.stringify({ metrics: [{ dimensions: { request_protocol: "request.host | " + "'x' | ".repeat(300) + "'y'" } }] }), "field 'metrics[0].dimensions.request_protocol': expression cannot be evaluated, reports unknown: expression longer than 1024 characters at 1024"],
  ["expression nested deeper than 32", JSON.stringify({ metrics: [{ dimensions: { request_protocol: "(".repeat(40) + "request.host" + ")".repeat(40) } }] }), "field 'metrics[0].dimensions.request_protocol': expression does not parse, dropped: nesting deeper than 32 at 32"],
  ["definition value that does not parse", '{"definitions": [{"name": "x", "value": "request.host +"}]}', "field 'definitions[0].value': expression does not parse, dropped: unexpected end of expression at 14"],
  ["definition of a standard metric", '{"definitions": [{"name": "requests_total", "value": "1"}]}', "field 'definitions[0].name': re-defining the standard metric 'requests_total' is not allowed, skipped"],
  ["unknown metric name", '{"metrics": [{"name": "requests"}]}', "field 'metrics[0].name': no metric named 'requests', the entry applies to nothing"],
  ["unknown label in tags_to_remove", '{"metrics": [{"tags_to_remove": ["nope"]}]}', "field 'metrics[0].tags_to_remove[0]': 'nope' is not a standard label, ignored"],
];

let app: Upstream;
let envoy: Envoy;
let httpPort: number;
let tcpPort: number;
let echo: net.Server;
let served = 0;

const httpWith = (config: string) =>
  httpListener({ name: "http", port: httpPort, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ config, failurePolicy: "FAIL_CLOSED", pluginName: "http" })] });
const tcpWith = (config: string) =>
  tcpListener({ name: "tcp", port: tcpPort, direction: "INBOUND", cluster: "echo", filters: [wasmNetworkFilter({ config, failurePolicy: "FAIL_CLOSED", pluginName: "tcp", vmId: "tcp" })] });

before(async () => {
  app = await startUpstream();
  echo = net.createServer((s) => s.pipe(s).on("error", () => {}));
  await new Promise<void>((ok) => echo.listen(0, "127.0.0.1", ok));
  httpPort = await freePort();
  tcpPort = await freePort();
  envoy = await startEnvoy({
    name: "config-table",
    dynamicListeners: true,
    listeners: [httpWith("{}"), tcpWith("{}")],
    clusters: [staticCluster("app", app.port), staticCluster("echo", (echo.address() as net.AddressInfo).port)],
  });
});

after(async () => {
  await envoy?.stop();
  await app?.close();
  await new Promise<void>((ok) => echo.close(() => ok()));
});

async function request(): Promise<void> {
  assert.equal((await httpRequest(`http://127.0.0.1:${httpPort}/`)).status, 200);
  served++;
}

async function requestsCounted(): Promise<number> {
  return sum(select(parsePrometheus(await envoy.prometheus()), "istio_requests_total"));
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

test(`${REFUSED.length} bad configurations are refused through LDS; the listener keeps serving and counting`, async () => {
  for (const [what, config] of REFUSED) {
    assert.equal(await envoy.updateListeners([httpWith(config), tcpWith("{}")]), "rejected", what);
    await request();
  }
  assert.equal(await requestsCounted(), served, "the old configuration counted every request");
  // Envoy writes its log in batches; wait for the last refusal, then check them all.
  await envoy.waitForLog(new RegExp(escape(`configuration refused: ${REFUSED.at(-1)![2]}`)), 15000);
  const refusals = envoy.logs().split("\n").filter((l) => l.includes("configuration refused: "));
  for (const [what, , message] of REFUSED) {
    const line = new RegExp(`\\[wasm\\].*wasm log [^:]*: configuration refused: ${escape(message)}$`);
    assert.ok(refusals.some((l) => line.test(l)), `${what}: no log line "${message}" among\n${refusals.join("\n").slice(0, 3000)}`);
  }
  assert.equal(envoy.exitCode, undefined, "Envoy never crashed");
});

test("a bad configuration for the network filter is refused the same way; TCP keeps flowing", async () => {
  assert.equal(await envoy.updateListeners([httpWith("{}"), tcpWith('{"tcp_reporting_duration": 5}')]), "rejected");
  const socket = net.connect(tcpPort, "127.0.0.1");
  await new Promise<void>((ok, fail) => socket.once("connect", ok).once("error", fail));
  socket.write("ping");
  const answer = await new Promise<string>((ok) => socket.once("data", (d) => ok(d.toString())));
  socket.end();
  assert.equal(answer, "ping");
  await eventually("the TCP connection counted", async () =>
    sum(select(parsePrometheus(await envoy.prometheus()), "istio_tcp_connections_opened_total")) >= 1 ? true : undefined,
  );
});

test("empty and huge-but-valid configurations are accepted and applied", async () => {
  for (const [what, config] of ACCEPTED) {
    assert.equal(await envoy.updateListeners([httpWith(config), tcpWith("{}")]), "accepted", what);
    // A new listener takes new connections once it has warmed up; every request is counted.
    const before = await requestsCounted();
    await request();
    assert.equal((await requestsCounted()) - before, 1, what);
  }
  const defs = select(parsePrometheus(await envoy.prometheus()), "istio_def_19_total");
  assert.equal(sum(defs), 1, "the last configuration's definitions apply");
});

test(`${ACCEPTED_AS_ISTIO.length} configurations Istio accepts are accepted, what is not applied as written logged`, async () => {
  for (const [what, config] of ACCEPTED_AS_ISTIO) {
    assert.equal(await envoy.updateListeners([httpWith(config), tcpWith("{}")]), "accepted", what);
    const before = await requestsCounted();
    await request();
    assert.equal((await requestsCounted()) - before, 1, what);
  }
  const last = ACCEPTED_AS_ISTIO.at(-1)![2];
  await envoy.waitForLog(new RegExp(escape(`configuration: ${last}`)), 15000);
  const warnings = envoy.logs().split("\n").filter((l) => l.includes("wasm log") && l.includes(" configuration: "));
  for (const [what, , warning] of ACCEPTED_AS_ISTIO) {
    if (warning === "") continue;
    assert.ok(warnings.some((l) => l.endsWith(`configuration: ${warning}`)), `${what}: no log line "${warning}" among\n${warnings.join("\n").slice(0, 3000)}`);
  }
});

test("a refused static configuration stops Envoy from starting under every failure_policy", async () => {
  for (const policy of ["FAIL_OPEN", "FAIL_CLOSED", "FAIL_RELOAD"] as const) {
    const port = await freePort();
    const e = await startEnvoy({
      name: "config-static",
      allowFailure: true,
      listeners: [httpListener({ name: "l", port, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ config: '{"max_series": 0}', failurePolicy: policy })] })],
      clusters: [staticCluster("app", app.port)],
    });
    try {
      assert.equal(e.exitCode, 1, policy);
      assert.match(e.logs(), /configuration refused: field 'max_series' \(offset 15\): expected an integer from 1 to 1000000/);
    } finally {
      await e.stop();
    }
  }
});
