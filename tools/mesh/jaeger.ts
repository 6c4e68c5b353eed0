// DEMO_TRACING=jaeger: the demo's spans go over OTLP/HTTP to Jaeger v2 instead of Zipkin v2
// JSON to Zipkin. Jaeger's OTLP receiver takes the collector address the proxies already dial
// (their `zipkin` cluster, tools/mesh/envoy-config.ts), its query API and UI get a loopback
// port, and the slowest trace is read back in the shape report.ts draws.
import { startJaeger, type Jaeger, type JaegerTrace } from "../../tests/harness/jaeger.ts";
import { freePort } from "../../tests/harness/envoy.ts";
import type { ZipkinSpan } from "../../tests/harness/zipkin.ts";
import { traceDuration } from "./report.ts";

export type DemoTracing = "zipkin" | "jaeger";

export function demoTracing(): DemoTracing {
  const v = process.env.DEMO_TRACING ?? "zipkin";
  if (v !== "zipkin" && v !== "jaeger") throw new Error(`DEMO_TRACING must be zipkin (default) or jaeger, not '${v}'`);
  return v;
}

/** The plugin's span exporter for the demo's collector cluster. */
export function demoExporter(cluster: string, zipkinPath: string): Record<string, unknown> {
  return demoTracing() === "jaeger" ? { otlp: { cluster } } : { zipkin: { cluster, path: zipkinPath } };
}

/** Jaeger with its OTLP receiver on the proxies' collector address. */
export async function startDemoJaeger(collector: { ip: string; port: number }): Promise<Jaeger> {
  return startJaeger({ otlp: collector, queryPort: await freePort() });
}

function asZipkin(t: JaegerTrace): ZipkinSpan[] {
  return t.spans.map((s) => ({
    traceId: s.traceID,
    id: s.spanID,
    parentId: s.references.find((r) => r.refType === "CHILD_OF")?.spanID,
    name: s.operationName,
    kind: String(s.tags.find((x) => x.key === "span.kind")?.value ?? "").toUpperCase() as ZipkinSpan["kind"],
    timestamp: s.startTime,
    duration: s.duration,
    localEndpoint: { serviceName: t.processes[s.processID]?.serviceName },
    tags: Object.fromEntries(s.tags.map((x) => [x.key, String(x.value)])),
  }));
}

/** The longest trace through the gateway Jaeger holds, as Zipkin-shaped spans for formatTraceTree. */
export async function slowestJaegerTrace(jaeger: Jaeger): Promise<ZipkinSpan[] | undefined> {
  let best: ZipkinSpan[] | undefined;
  for (const t of await jaeger.traces("istio-ingressgateway")) {
    const spans = asZipkin(t);
    if (!best || traceDuration(spans) > traceDuration(best)) best = spans;
  }
  return best;
}
