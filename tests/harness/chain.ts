// The three-service chain the tracing tests drive through real sidecars: a gateway ->
// productpage -> reviews and ratings, each an Istio-shaped sidecar with the plugin, the apps
// forwarding the trace headers (or not, when a test says so). The same plugin configuration
// and extra clusters (the collector) go to every sidecar.
import http from "node:http";
import { httpRequest, type Upstream, type WasmFilterOptions } from "./envoy.ts";
import { startSidecar, type Sidecar, type Workload } from "./sidecars.ts";

export const TRACE_HEADERS = ["x-request-id", "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"];

export const GATEWAY: Workload = { workload: "istio-ingressgateway", namespace: "istio-system", app: "istio-ingressgateway", version: "v1" };
export const PRODUCTPAGE: Workload = { workload: "productpage-v1", namespace: "default", app: "productpage", version: "v1" };
export const REVIEWS: Workload = { workload: "reviews-v1", namespace: "default", app: "reviews", version: "v1" };
export const RATINGS: Workload = { workload: "ratings-v1", namespace: "default", app: "ratings", version: "v1" };

/** The path productpage's app calls reviews and ratings on. */
export const CALLEE_PATH = "/item?id=7";

export class TracedChain {
  sidecars: Sidecar[] = [];
  apps: Upstream[] = [];
  /** Whether the apps forward the trace headers on their calls. */
  forwardHeaders = true;
  gateway!: Sidecar;
  productpage!: Sidecar;

  /** The gateway's outbound listener to productpage. */
  get url(): string {
    return `http://127.0.0.1:${this.gateway.outboundPorts.productpage}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sidecars) await s.envoy.stop();
    for (const a of this.apps) await a.close();
  }

  /** An app that calls `calls` (ports of its sidecar's outbound listeners), then answers 200, or 503 on /fail. */
  async startApp(calls: () => number[]): Promise<Upstream> {
    const server = http.createServer(async (req, res) => {
      const forwarded: Record<string, string> = {};
      if (this.forwardHeaders) {
        for (const h of TRACE_HEADERS) if (typeof req.headers[h] === "string") forwarded[h] = req.headers[h] as string;
      }
      for (const port of calls()) await httpRequest(`http://127.0.0.1:${port}${CALLEE_PATH}`, { headers: forwarded });
      res.writeHead(req.url?.startsWith("/fail") ? 503 : 200, { "content-type": "text/plain" });
      res.end("ok\n");
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const port = (server.address() as { port: number }).port;
    const app = { port, requests: [], close: () => new Promise<void>((ok) => { server.closeAllConnections(); server.close(() => ok()); }) };
    this.apps.push(app);
    return app;
  }
}

export async function startTracedChain(plugin: WasmFilterOptions, clusters: any[]): Promise<TracedChain> {
  const chain = new TracedChain();
  try {
    const leaf = await chain.startApp(() => []);
    const reviews = await startSidecar({ workload: REVIEWS, appPort: leaf.port, plugin, clusters });
    chain.sidecars.push(reviews);
    const ratings = await startSidecar({ workload: RATINGS, appPort: leaf.port, plugin, clusters });
    chain.sidecars.push(ratings);
    const productApp = await chain.startApp(() => [chain.productpage.outboundPorts.reviews, chain.productpage.outboundPorts.ratings]);
    chain.productpage = await startSidecar({
      workload: PRODUCTPAGE,
      appPort: productApp.port,
      outbound: [
        { service: { name: "reviews", namespace: "default" }, endpoints: [{ port: reviews.inboundPort }] },
        { service: { name: "ratings", namespace: "default" }, endpoints: [{ port: ratings.inboundPort }] },
      ],
      plugin,
      clusters,
    });
    chain.sidecars.push(chain.productpage);
    chain.gateway = await startSidecar({
      workload: GATEWAY,
      outbound: [{ service: { name: "productpage", namespace: "default" }, endpoints: [{ port: chain.productpage.inboundPort }] }],
      plugin,
      clusters,
    });
    chain.sidecars.push(chain.gateway);
  } catch (err) {
    await chain.stop();
    throw err;
  }
  return chain;
}
