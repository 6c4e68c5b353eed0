// `make demo`: starts Envoy with the plugin in front of a small app (an outbound listener
// reporting as `source` and an inbound one reporting as `destination`), drives traffic with a
// mix of response codes, and shows what the plugin counted on /stats/prometheus.
import {
  startEnvoy, startUpstream, freePort, httpListener, staticCluster, wasmHttpFilter, httpRequest,
} from "./harness/envoy.ts";
import { parsePrometheus, select } from "./harness/prometheus.ts";

const started = Date.now();
const step = (text: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);

step("starting the app (a loopback HTTP server)");
const app = await startUpstream();
const outbound = await freePort();
const inbound = await freePort();
step("starting Envoy with build/plugin.wasm on an outbound and an inbound listener");
const envoy = await startEnvoy({
  name: "demo",
  listeners: [
    httpListener({ name: "outbound", port: outbound, direction: "OUTBOUND", cluster: "app", filters: [wasmHttpFilter()] }),
    httpListener({ name: "inbound", port: inbound, direction: "INBOUND", cluster: "app", filters: [wasmHttpFilter()] }),
  ],
  clusters: [staticCluster("app", app.port)],
});
try {
  step(`Envoy is LIVE (admin http://127.0.0.1:${envoy.adminPort}/stats/prometheus)`);
  const plan: Array<[number, string, number]> = [
    [outbound, "/", 40],
    [outbound, "/status/503", 5],
    [inbound, "/", 30],
    [inbound, "/status/404", 3],
  ];
  for (const [port, path, count] of plan) {
    for (let i = 0; i < count; i++) await httpRequest(`http://127.0.0.1:${port}${path}`);
    step(`sent ${count} requests to ${port === outbound ? "outbound" : "inbound"} ${path}`);
  }
  const samples = select(parsePrometheus(await envoy.prometheus()), "istio_requests_total");
  console.log("\nistio_requests_total as Envoy exports it:\n");
  console.log("  reporter      response_code  request_protocol  count");
  for (const s of samples.sort((a, b) => (a.labels.reporter + a.labels.response_code).localeCompare(b.labels.reporter + b.labels.response_code))) {
    console.log(`  ${s.labels.reporter.padEnd(12)}  ${s.labels.response_code.padEnd(13)}  ${s.labels.request_protocol.padEnd(16)}  ${s.value}`);
  }
  console.log(`\n${samples.length} series, each with ${Object.keys(samples[0]?.labels ?? {}).length} labels. Full text:`);
  console.log(`  curl -s http://127.0.0.1:${envoy.adminPort}/stats/prometheus | grep istio_requests_total`);
  if (process.env.DEMO_HOLD) {
    step("holding (DEMO_HOLD set); Ctrl-C to stop");
    await new Promise<void>((resolveHold) => process.on("SIGINT", () => resolveHold()));
  }
} finally {
  await envoy.stop();
  await app.close();
  step("stopped Envoy and the app");
}
