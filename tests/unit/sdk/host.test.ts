// The ABI encodings the plugin's host layer (assembly/sdk/host.ts, headers.ts) decodes, as the
// test host produces them, and the plugin reading them: the host's answers must be Envoy's, or
// every other spec here would test against the wrong host.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { deserializePairs, Double, parseCel, serializePairs, serializeValue } from "../../harness/proxywasm.ts";
import { serverSidecar, TRACING_OFF } from "../../harness/sidecar-vms.ts";

describe("encodings (shared/reference/proxywasm_envoy_oci.md §1.4, §2.1)", () => {
  test("pairs: u32 count, (u32 key length, u32 value length) each, then NUL-terminated keys and values", () => {
    const bytes = serializePairs([["a", "1"], ["bc", ""]]);
    assert.deepEqual([...bytes], [2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x61, 0, 0x31, 0, 0x62, 0x63, 0, 0]);
    assert.deepEqual(deserializePairs(bytes), [["a", "1"], ["bc", ""]]);
    assert.throws(() => deserializePairs(bytes.subarray(0, bytes.length - 1)));
  });

  test("attribute values: strings raw, integers 8 bytes LE, bools 1 byte, doubles 8 bytes, maps as pairs", () => {
    assert.deepEqual([...serializeValue("ab")], [0x61, 0x62]);
    assert.deepEqual([...serializeValue(258n)], [2, 1, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...serializeValue(-1)], [255, 255, 255, 255, 255, 255, 255, 255]);
    assert.deepEqual([...serializeValue(true)], [1]);
    assert.deepEqual([...serializeValue(new Double(1))], [0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
    assert.deepEqual(deserializePairs(serializeValue({ k: "v" })), [["k", "v"]]);
  });
});

describe("CEL foreign functions (expr_create / expr_evaluate)", () => {
  test("the host understands the plugin's subset and refuses the rest loudly", () => {
    assert.deepEqual(parseCel("[has(response.code) ? response.code : 0, has(a.b) ? a.b : '', has(c) ? c : false]"), [
      { path: ["response", "code"], fallback: 0n },
      { path: ["a", "b"], fallback: "" },
      { path: ["c"], fallback: false },
    ]);
    assert.deepEqual(parseCel("xds.cluster_name"), { path: ["xds", "cluster_name"] });
    assert.throws(() => parseCel("size(request.path) > 3"), /not understood/);
    assert.throws(() => parseCel("has(a) ? b : 1"), /not understood/);
  });

  test("a list result is serialized as pairs of each element's own serialization and an empty value", () => {
    const vm = serverSidecar({ config: TRACING_OFF });
    for (let i = 0; i < 3; i++) vm.request({ headers: [[":authority", "x"]], response: [[":status", "201"]] });
    const [m] = vm.metricsNamed("istio_requests_total");
    assert.equal(m.labels.response_code, "201", "response.code through expr_evaluate");
    assert.equal(m.value, 3n);
    assert.equal(vm.calls.count({ key: "expr_create" }), 1, "compiled once");
    assert.equal(vm.calls.count({ key: "expr_evaluate" }), 3, "evaluated per request");
    // The connection's TLS facts are read once for the connection, the rest never one by one.
    const oneByOne = vm.calls.calls.filter((c) => c.fn === "get_property" && /^(request|response|connection)\./.test(c.key!));
    assert.deepEqual(oneByOne.map((c) => c.key).sort(), ["connection.mtls", "connection.uri_san_local_certificate", "connection.uri_san_peer_certificate"]);
  });
});

describe("the plugin on malformed host answers", () => {
  test("an empty request header map (null pointer, size 0, as Envoy returns it) is counted, not trapped", () => {
    const vm = serverSidecar({ config: TRACING_OFF });
    vm.request({ headers: [], response: [] });
    assert.equal(vm.metricValue("istio_requests_total", { request_protocol: "http", response_code: "200" }), 1n, "response.code at log");
  });

  test("an integer attribute of the wrong width falls back instead of trapping", () => {
    const vm = serverSidecar({ config: TRACING_OFF });
    vm.request({ headers: [[":authority", "x"]], properties: { response: { flags: "UH", code: 200n, total_size: new Uint8Array(3) } } });
    assert.equal(vm.metricValue("istio_requests_total", { response_flags: "-" }), 1n);
    assert.deepEqual(vm.metricsNamed("istio_response_bytes")[0].samples, [0n]);
  });
});
