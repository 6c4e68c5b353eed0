// Istio's Grafana dashboards on the demo mesh (docs/mesh-demo.md, docs/dashboards.md):
//
// - the steps to import Istio's Mesh and Service dashboards (the JSON files in
//   .cache/istio-dashboards, put there by make deps) into a Grafana the user runs, on the demo's
//   Prometheus;
// - the static page of tools/dashboards/page.ts, drawn from the same queries over the traffic
//   window the demo drove, for every service of the mesh; served on 127.0.0.1 until close()
//   and screenshotted with headless Chromium into <outDir>/dashboard.png.
import { rmSync } from "node:fs";
import { join, relative } from "node:path";
import { ROOT, httpRequest } from "../../tests/harness/envoy.ts";
import { chromiumBinary, PAGE_DIR, screenshot, serveStatic, writeDashboardPage, type PageService } from "../dashboards/page.ts";
import {
  builtins, DASHBOARDS_DIR, extractVariableValues, instantQuery, loadDashboards, PromQueryError, queryKey, queryResultLine, substitute,
  variableOrder, variableQueryExpr,
} from "../dashboards/queries.ts";
import { type Topology } from "./topology.ts";
import { serviceHost } from "../../tests/harness/sidecars.ts";

export interface DemoDashboards {
  /** The page as written (build/dashboards/index.html) and where it is served. */
  page: string;
  url: string;
  /** The screenshot, or why there is none (an error: Chromium belongs to `make system-deps`). */
  png?: string;
  pngError?: string;
  /** What to print: the page, the screenshot and the Grafana import steps. */
  report: string;
  /** Stops serving the page. */
  close(): Promise<void>;
}

const rel = (p: string) => (p.startsWith(`${ROOT}/`) ? relative(ROOT, p) : p);
const clock = (t: number) => new Date(t * 1000).toISOString().slice(11, 19);

/** Prometheus's scrape interval in seconds, as its targets report it (the Grafana data source's "Scrape interval"). */
async function scrapeIntervalS(prometheusUrl: string): Promise<number> {
  const res = await httpRequest(`${prometheusUrl}/api/v1/targets`);
  const interval: string | undefined = JSON.parse(res.body).data?.activeTargets?.[0]?.scrapeInterval;
  const m = interval?.match(/^(\d+)s$/);
  if (!m) throw new Error(`cannot read Prometheus's scrape interval (got ${interval ?? "no target"})`);
  return Number(m[1]);
}

/** The mesh's services as the dashboards name them (`$service`): bookinfo's HTTP services and the TCP database. */
export function pageServices(t: Topology): PageService[] {
  return t.services.map((s) => ({ host: serviceHost(s), protocol: s.protocol }));
}

/** The steps to run Istio's dashboards in the user's own Grafana, on this Prometheus. */
export function grafanaImportSteps(o: { prometheusUrl: string; scrapeS: number; services: PageService[]; start: number; end: number }): string {
  const files = loadDashboards().map((d) => ({ path: join(DASHBOARDS_DIR, d.file), title: d.title }));
  const width = Math.max(...files.map((f) => f.path.length));
  const port = new URL(o.prometheusUrl).port;
  return [
    `Istio's Grafana dashboards in your own Grafana, on the demo's Prometheus:`,
    `  data source  ${o.prometheusUrl}   (type Prometheus, scrape interval ${o.scrapeS}s)`,
    ...files.map((f, i) => `  ${i === 0 ? "dashboards  " : "            "} ${f.path.padEnd(width)}   (${f.title})`),
    `  1. Connections > Data sources > Add data source > Prometheus: URL ${o.prometheusUrl}; under Interval behaviour`,
    `     set Scrape interval to ${o.scrapeS}s (Grafana's default 15s makes $__rate_interval 1m, longer than the run); Save & test.`,
    `  2. Dashboards > New > Import > Upload dashboard JSON file: each file above > Import.`,
    `  3. Choose the Prometheus data source: in each dashboard's "datasource" picker at the top (the files declare no`,
    `     import inputs, so the import form asks for none; the picker starts on Grafana's default data source).`,
    `     Time range: the run was ${clock(o.start)}-${clock(o.end)} UTC ("Last 15 minutes" covers it); Service dashboard, Service:`,
    `     ${o.services.map((s) => s.host).join(", ")}.`,
    `  Grafana must reach ${o.prometheusUrl}: Prometheus listens on the demo host's loopback only, so run Grafana on`,
    `  this host (in a container: --network host), or forward the port (ssh -L ${port}:127.0.0.1:${port} <demo host>).`,
    `  It answers only while the demo holds the mesh up.`,
  ].join("\n");
}

/**
 * Renders the page from Istio's dashboards' queries over [start, end] (epoch seconds, the
 * traffic window), serves it, screenshots it into `<outDir>/dashboard.png`, and says where
 * everything is. A missing Chromium is reported in `pngError`, not skipped.
 */
export async function showDashboards(o: { prometheusUrl: string; topology: Topology; start: number; end: number; outDir: string }): Promise<DemoDashboards> {
  const services = pageServices(o.topology);
  const scrapeS = await scrapeIntervalS(o.prometheusUrl);
  // Grafana's step for a short range is the data source's scrape interval; so is the page's.
  const page = await writeDashboardPage({
    prometheusUrl: o.prometheusUrl, services, start: o.start, end: o.end, statsAt: o.end, stepS: scrapeS, scrapeIntervalS: scrapeS,
    title: "mesh-telemetry-wasm demo: Istio's Mesh and Service dashboards",
  });
  const site = await serveStatic(PAGE_DIR);
  const png = join(o.outDir, "dashboard.png");
  let pngError: string | undefined;
  rmSync(png, { force: true }); // no earlier run's screenshot passing for this one's
  try {
    if (!chromiumBinary()) throw new Error("Chromium not found (make system-deps installs Debian's chromium; or set CHROMIUM_BIN)");
    // Tall enough for the header, the Mesh row (~300 px) and each service's row of charts (~265 px).
    await screenshot(site.url, png, { width: 1280, height: 320 + 270 * services.length });
  } catch (err) {
    pngError = (err as Error).message;
  }
  const report = [
    `Istio's dashboards as a static page, from the same queries over the run (${clock(o.start)}-${clock(o.end)} UTC): Mesh dashboard's`,
    `stats and workload tables; Service dashboard's request rate, success rate and duration for ${services.map((s) => s.host.split(".")[0]).join(", ")}:`,
    `  page        ${site.url}   (${rel(page.path)}; served while the mesh is up)`,
    `  screenshot  ${pngError ? `NONE: ${pngError}` : rel(png)}`,
    "",
    grafanaImportSteps({ prometheusUrl: o.prometheusUrl, scrapeS, services, start: o.start, end: o.end }),
  ].join("\n");
  return { page: page.path, url: site.url, png: pngError ? undefined : png, pngError, report, close: () => site.close() };
}

// ---- Every dashboard query over the demo mesh ----

/**
 * Queries of Istio's dashboards that cannot answer over the demo mesh, by design, with the reason
 * (docs/mesh-demo.md). None since the plugin exports istio_build from the node's ISTIO_VERSION:
 * every query answers in at least one context (tests/integration/mesh.test.ts).
 */
export const DEMO_NO_DATA_BY_DESIGN: Record<string, string> = {};

/** One panel query of Istio's dashboards, and the contexts (dashboard, $service, $qrep) in which it answered with data. */
export interface QueryCoverage {
  key: string;
  dashboard: string;
  panel: string;
  /** Contexts with a non-empty answer, e.g. "service=redis.bookinfo.svc.cluster.local qrep=destination". */
  answered: string[];
  /** Contexts that were asked. */
  asked: string[];
  /** A Prometheus error, if any context's query failed. */
  error?: string;
}

/**
 * Runs every panel query of Istio's Mesh and Service dashboards against the mesh's Prometheus,
 * at `end` with Grafana's built-ins for the window [start, end]: the Mesh dashboard once, the
 * Service dashboard for each service of the mesh and each reporter choice ($qrep), its other
 * variables resolved from their own queries as Grafana does ("All").
 */
export async function dashboardCoverage(o: { prometheusUrl: string; topology: Topology; start: number; end: number }): Promise<QueryCoverage[]> {
  const scrapeS = await scrapeIntervalS(o.prometheusUrl);
  const sub = { builtins: builtins({ scrapeIntervalS: scrapeS, intervalS: scrapeS, rangeS: o.end - o.start }) };
  const byKey = new Map<string, QueryCoverage>();
  for (const d of loadDashboards()) {
    const contexts: Array<{ name: string; values: Record<string, string | string[]> }> = d.variables.some((v) => v.name === "service")
      ? pageServices(o.topology).flatMap((s) => [["destination"], ["source"], ["source", "destination"]].map((qrep) => ({
        name: `service=${s.host} qrep=${qrep.join("|")}`, values: { service: s.host, qrep } as Record<string, string | string[]>,
      })))
      : [{ name: "mesh", values: {} }];
    for (const ctx of contexts) {
      for (const v of variableOrder(d.variables)) {
        if (v.name in ctx.values) continue;
        if (v.type === "datasource") {
          ctx.values[v.name] = "prometheus";
          continue;
        }
        const inner = variableQueryExpr(v.query);
        if (v.type !== "query" || inner === undefined) throw new Error(`${d.file}: no value for variable ${v.name} (type ${v.type})`);
        const expr = substitute(inner, { ...sub, values: ctx.values }, d.variables);
        const lines = (await instantQuery(o.prometheusUrl, expr, o.end)).map((s) => queryResultLine(s.metric, s.value, o.end));
        ctx.values[v.name] = extractVariableValues(lines, v.regex);
      }
      for (const q of d.queries) {
        const key = queryKey(q);
        const entry = byKey.get(key) ?? { key, dashboard: d.title, panel: q.panelTitle, answered: [], asked: [] };
        byKey.set(key, entry);
        entry.asked.push(ctx.name);
        try {
          const expr = substitute(q.expr, { ...sub, values: ctx.values }, d.variables);
          if ((await instantQuery(o.prometheusUrl, expr, o.end)).length > 0) entry.answered.push(ctx.name);
        } catch (err) {
          entry.error = err instanceof PromQueryError ? err.reason : (err as Error).message;
        }
      }
    }
  }
  return [...byKey.values()];
}
