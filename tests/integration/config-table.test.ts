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
} from "../../tools/harness/envoy.ts";
import { parsePrometheus, select, sum } from "../../tools/harness/prometheus.ts";

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
  ["wrong type: max_series as a string", '{"max_series": "10"}', "field 'max_series' (offset 15): expected an integer from 1 to 1000000"],
  ["wrong type: metrics as an object", '{"metrics": {"name": "x"}}', "field 'metrics' (offset 12): expected an array, got object"],
  ["wrong type: dimensions as an array", '{"metrics": [{"dimensions": ["request.host"]}]}', "field 'metrics[0].dimensions' (offset 28): expected an object of tag: expression, got array"],
  ["wrong type: dimension as a number", '{"metrics": [{"dimensions": {"tier": 5}}]}', "field 'metrics[0].dimensions.tier' (offset 37): expected an expression string, got number"],
  ["wrong type: tracing.enabled as a string", '{"tracing": {"enabled": "yes"}}', "field 'tracing.enabled' (offset 24): expected a boolean, got string"],
  ["bad expression: syntax", `{"metrics": [{"dimensions": {"tier": "request.headers['x'] |"}}]}`, "field 'metrics[0].dimensions.tier' (offset 37): bad expression: unexpected end of expression at 22"],
  ["bad expression: unknown root", '{"metrics": [{"dimensions": {"tier": "requests.host"}}]}', "field 'metrics[0].dimensions.tier' (offset 37): bad expression: unknown attribute root 'requests' at 0"],
  ["bad expression: type error", `{"metrics": [{"dimensions": {"tier": "response.code == '200'"}}]}`, "field 'metrics[0].dimensions.tier' (offset 37): bad expression: cannot compare int with string at 14"],
  ["bad expression: longer than 1024", JSON.stringify({ metrics: [{ dimensions: { tier: "request.host | " + "'x' | ".repeat(300) + "'y'" } }] }), "field 'metrics[0].dimensions.tier' (offset 34): bad expression: expression longer than 1024 characters at 1024"],
  ["bad expression: nesting deeper than 32", JSON.stringify({ metrics: [{ dimensions: { tier: "(".repeat(40) + "request.host" + ")".repeat(40) } }] }), "field 'metrics[0].dimensions.tier' (offset 34): bad expression: nesting deeper than 32 at 32"],
  ["bad expression: definition value", '{"definitions": [{"name": "x", "value": "request.host +"}]}', "field 'definitions[0].value' (offset 40): bad expression: unexpected '+' at 13"],
  ["out of range: max_series 0", '{"max_series": 0}', "field 'max_series' (offset 15): expected an integer from 1 to 1000000"],
  ["out of range: max_series 1000001", '{"max_series": 1000001}', "field 'max_series' (offset 15): expected an integer from 1 to 1000000"],
  ["out of range: max_series 1e400", '{"max_series": 1e400}', "field 'max_series' (offset 15): expected an integer from 1 to 1000000"],
  ["out of range: tcp_reporting_duration 99ms", '{"tcp_reporting_duration": "99ms"}', `field 'tcp_reporting_duration' (offset 27): expected a duration from "100ms" to "1h", such as "5s"`],
  ["out of range: tcp_reporting_duration 2h", '{"tcp_reporting_duration": "2h"}', `field 'tcp_reporting_duration' (offset 27): expected a duration from "100ms" to "1h", such as "5s"`],
  ["out of range: sampling 101", '{"tracing": {"random_sampling_percentage": 101}}', "field 'tracing.random_sampling_percentage' (offset 43): expected a number from 0 to 100"],
  ["out of range: max_batch_spans 0", '{"tracing": {"max_batch_spans": 0}}', "field 'tracing.max_batch_spans' (offset 32): expected an integer from 1 to 10000"],
  ["bad value: reporter", '{"reporter": "client"}', "field 'reporter' (offset 13): unknown reporter 'client' (expected UNSPECIFIED, SERVER_GATEWAY, source, destination or waypoint)"],
  ["bad value: definition type", '{"definitions": [{"name": "x", "value": "1", "type": "SUMMARY"}]}', "field 'definitions[0].type' (offset 53): expected COUNTER, GAUGE or HISTOGRAM"],
  ["bad value: metric name", '{"metrics": [{"name": "requests"}]}', "field 'metrics[0].name' (offset 22): unknown metric 'requests' (standard names such as requests_total, or a definitions[] name)"],
  ["bad value: label name", '{"metrics": [{"dimensions": {"1tier": "request.host"}}]}', "field 'metrics[0].dimensions.1tier' (offset 38): not a valid label name"],
  ["bad value: tags_to_remove", '{"metrics": [{"tags_to_remove": ["nope"]}]}', "field 'metrics[0].tags_to_remove': unknown label 'nope'"],
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
