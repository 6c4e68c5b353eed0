// A bad plugin configuration is refused at configure time with a log line naming the field.
// (Static listeners: Envoy refuses to start. Dynamic updates are covered with the robustness work.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { startEnvoy, freePort, httpListener, staticCluster, wasmHttpFilter } from "../harness/envoy.ts";

const cases: Array<[string, unknown, RegExp]> = [
  ["wrong type", { reporter: ["source"] }, /configuration refused: field 'reporter' \(offset 12\): expected a string, got array/],
  ["unknown field", { reportr: "source" }, /configuration refused: field 'reportr' \(offset 11\): unknown field/],
  ["malformed JSON", '{"reporter": "source"', /configuration refused: malformed JSON at offset 21/],
];

for (const [name, config, expected] of cases) {
  test(`${name}: refused with a log line naming the field`, async () => {
    const port = await freePort();
    const envoy = await startEnvoy({
      name: `bad-config`,
      allowFailure: true,
      listeners: [httpListener({ name: "l", port, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ config })] })],
      clusters: [staticCluster("app", 9)],
    });
    try {
      await envoy.waitForLog(expected);
      assert.match(envoy.logs(), /Unable to create Wasm plugin/);
    } finally {
      await envoy.stop();
    }
  });
}
