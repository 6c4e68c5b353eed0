// Configuration through a control plane (LDS): a refused plugin configuration leaves the
// running listener serving with its previous configuration, and a good update applies.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  freePort, httpListener, httpRequest, staticCluster, startEnvoy, startUpstream, wasmHttpFilter, type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";

let app: Upstream;
let envoy: Envoy;
let port: number;

const listenerWith = (config: unknown) =>
  httpListener({ name: "inbound", port, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter({ config })] });

before(async () => {
  app = await startUpstream();
  port = await freePort();
  envoy = await startEnvoy({
    name: "reload",
    dynamicListeners: true,
    listeners: [listenerWith({})],
    clusters: [staticCluster("app", app.port)],
  });
});

after(async () => {
  await envoy?.stop();
  await app?.close();
});

async function count(reporter: string): Promise<number> {
  return sum(select(parsePrometheus(await envoy.prometheus()), "istio_requests_total", { reporter }));
}

test("bad configurations are refused with the field named, and traffic keeps flowing on the old one", async () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ reporter: { name: "source" } }, /configuration refused: field 'reporter' \(offset 12\): expected a string, got object/],
    [{ max_series: -1 }, /configuration refused: field 'max_series' \(offset 14\): expected an integer from 1 to 1000000/],
    [{ disable_host_header_fallback: "yes" }, /configuration refused: field 'disable_host_header_fallback' \(offset 32\): expected a boolean, got string/],
    ['{"reporter": ', /configuration refused: malformed JSON at offset 13: unexpected end of input/],
  ];
  for (const [config, line] of bad) {
    assert.equal(await envoy.updateListeners([listenerWith(config)]), "rejected", JSON.stringify(config));
    await envoy.waitForLog(line);
    for (let i = 0; i < 3; i++) assert.equal((await httpRequest(`http://127.0.0.1:${port}/`)).status, 200);
  }
  assert.equal(await count("destination"), 12, "the old configuration still reports every request");
});

test("a good update applies: the reporter switches as configured", async () => {
  assert.equal(await envoy.updateListeners([listenerWith({ reporter: "source" })]), "accepted");
  // The new listener takes new connections once it has warmed up.
  const before = await count("source");
  for (let i = 0; i < 5; i++) assert.equal((await httpRequest(`http://127.0.0.1:${port}/`)).status, 200);
  assert.equal((await count("source")) - before, 5);
});
