// Plugin configuration through ECDS (extension config discovery), which is how Istio delivers a
// WasmPlugin to its sidecars: the listener stays, only the filter's config is replaced. A good
// update applies to new requests without a listener drain; a refused plugin configuration or a
// module that does not load is rejected (Envoy keeps the last good filter config and counts
// the failure), and traffic keeps flowing and being counted throughout.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  eventually, freePort, httpListener, httpRequest, renderTemplate, staticCluster, startEnvoy, startUpstream, wasmHttpFilter,
  type Envoy, type Upstream,
} from "../harness/envoy.ts";
import { parsePrometheus, select, sum } from "../harness/prometheus.ts";
import { truncatedPluginWasm } from "../fixtures/build.ts";

const FILTER = "istio.stats";
let app: Upstream;
let envoy: Envoy;
let port: number;
let dir: string;
let version = 0;

/** Publishes the filter config as an ECDS resource (atomic rename, which Envoy's file watch sees). */
function publish(options: Parameters<typeof wasmHttpFilter>[0]): void {
  const filter = wasmHttpFilter(options);
  const resource = { "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig", name: FILTER, typed_config: filter.typed_config };
  const staging = join(dir, `ecds.${++version}.json`);
  writeFileSync(staging, JSON.stringify({ version_info: String(version), resources: [resource] }));
  renameSync(staging, join(dir, "ecds.json"));
}

async function ecdsStat(name: "update_success" | "update_rejected"): Promise<number> {
  const text = await envoy.admin("/stats?filter=extension_config_discovery");
  return [...text.matchAll(new RegExp(`extension_config_discovery\\.[^:]*${FILTER.replace(".", "\\.")}\\.${name}: (\\d+)`, "g"))].reduce((a, m) => a + Number(m[1]), 0);
}

/** Publishes and waits until Envoy has applied or refused it. */
async function update(options: Parameters<typeof wasmHttpFilter>[0]): Promise<"applied" | "refused"> {
  const [reloads, fails] = [await ecdsStat("update_success"), await ecdsStat("update_rejected")];
  publish(options);
  return eventually("ECDS update applied or refused", async () => {
    if ((await ecdsStat("update_rejected")) > fails) return "refused" as const;
    if ((await ecdsStat("update_success")) > reloads) return "applied" as const;
    return undefined;
  });
}

let sent = 0;
async function send(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    assert.equal((await httpRequest(`http://127.0.0.1:${port}/`)).status, 200);
    sent++;
  }
}

async function counted(match: Record<string, string> = {}): Promise<number> {
  return sum(select(parsePrometheus(await envoy.prometheus()), "istio_requests_total", match));
}

before(async () => {
  app = await startUpstream();
  port = await freePort();
  dir = mkdtempSync(join(tmpdir(), "ecds-"));
  publish({ config: {} });
  envoy = await startEnvoy({
    name: "ecds",
    listeners: [httpListener({ name: "in", port, direction: "INBOUND", cluster: "app", filters: [renderTemplate("ecds-http-filter.yaml", { NAME: FILTER, PATH: join(dir, "ecds.json") })] })],
    clusters: [staticCluster("app", app.port)],
  });
});

after(async () => {
  await envoy?.stop();
  await app?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the first ECDS config is applied: requests are counted", async () => {
  await send(3);
  assert.equal(await counted({ reporter: "destination" }), 3);
});

test("a good ECDS update applies to new requests on the same listener and connection", async () => {
  assert.equal(await update({ config: { reporter: "source" } }), "applied");
  await eventually("new config in effect", async () => {
    await send(1);
    return (await counted({ reporter: "source" })) > 0 ? true : undefined;
  });
  const before = await counted({ reporter: "source" });
  await send(5);
  assert.equal((await counted({ reporter: "source" })) - before, 5);
  assert.equal(sum(select(parsePrometheus(await envoy.prometheus()), "envoy_listener_manager_listener_modified")), 0, "no listener update");
});

test("a refused plugin configuration or a broken module through ECDS is rejected; the last good config keeps serving", async () => {
  const before = await counted({ reporter: "source" });
  for (const bad of [{ config: { max_series: 0 } }, { config: "{not json" }, { wasmPath: truncatedPluginWasm() }]) {
    assert.equal(await update(bad), "refused", JSON.stringify(bad).slice(0, 80));
    await send(2);
  }
  assert.equal((await counted({ reporter: "source" })) - before, 6, "the last good config (reporter source) counted every request");
  assert.equal(await counted(), sent, "no request lost across updates");
  assert.equal(envoy.exitCode, undefined);
  assert.match(await envoy.admin("/stats?filter=extension_config_discovery"), new RegExp(`${FILTER.replace(".", "\\.")}\\.version_text: "2"`), "still the last good version");
});
