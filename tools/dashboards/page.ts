// A static stand-in for Grafana: one HTML page with inline SVG charts drawn from Prometheus
// range queries, using the very queries of Istio's Mesh and Service dashboards
// (tools/dashboards/queries.ts) with their variables substituted. No JavaScript, no CSS or
// fonts from the network: the page is complete as written to build/dashboards/index.html.
//
//   const page = await writeDashboardPage({ prometheusUrl, services, start, end });
//   const site = await serveStatic(dirname(page.path));      // http://127.0.0.1:PORT/
//   await screenshot(site.url, "build/demo/dashboard.png");   // headless Chromium
import http from "node:http";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { ROOT } from "../../tests/harness/envoy.ts";
import {
  builtins, instantQuery, legend, loadDashboards, rangeQuery, substitute,
  type Dashboard, type PanelQuery, type RangeSeries,
} from "./queries.ts";

export const PAGE_DIR = join(ROOT, "build/dashboards");

export interface PageService {
  /** Fully qualified service host, the dashboards' `$service`. */
  host: string;
  protocol: "http" | "grpc" | "tcp";
}

export interface PageOptions {
  prometheusUrl: string;
  services: PageService[];
  /** Epoch seconds of the charted range. */
  start: number;
  end: number;
  /** Range-query step and Prometheus's scrape interval, seconds. */
  stepS?: number;
  scrapeIntervalS?: number;
  /** When the stat panels and tables are read (default: end). */
  statsAt?: number;
  title?: string;
  dashboards?: Dashboard[];
}

interface Chart {
  title: string;
  unit: "rps" | "ratio" | "ms" | "Bps";
  series: Array<{ name: string; points: Array<[number, number]> }>;
  /** The queries behind it, shown under the chart. */
  queries: string[];
}

const COLORS = ["#73bf69", "#f2cc0c", "#ff7383", "#8ab8ff", "#ca95e5", "#ff9830"];

function findQuery(d: Dashboard, panelTitle: string, refId?: string): PanelQuery {
  const q = d.queries.find((x) => x.panelTitle === panelTitle && (refId === undefined || x.refId === refId));
  if (!q) throw new Error(`${d.title}: no panel '${panelTitle}'${refId ? ` [${refId}]` : ""}`);
  return q;
}

function formatValue(v: number, unit: Chart["unit"]): string {
  if (!Number.isFinite(v)) return "–";
  if (unit === "ratio") return `${(v * 100).toFixed(1)}%`;
  if (unit === "ms") return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 1 : 0)} ms`;
  if (unit === "Bps") return v >= 1000 ? `${(v / 1000).toFixed(1)} kB/s` : `${v.toFixed(0)} B/s`;
  return `${v.toFixed(v < 10 ? 2 : 1)} req/s`;
}

function clock(t: number): string {
  return new Date(t * 1000).toISOString().slice(11, 19);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** The next 1, 2, 2.5 or 5 times a power of ten. */
function niceCeiling(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return ([1, 2, 2.5, 5, 10].find((m) => m * p >= v) ?? 10) * p;
}

/** One line chart as inline SVG. */
export function svgChart(chart: Chart, start: number, end: number, width = 376, height = 150): string {
  const m = { l: 64, r: 10, t: 10, b: 24 };
  const w = width - m.l - m.r;
  const h = height - m.t - m.b;
  const values = chart.series.flatMap((s) => s.points.map(([, v]) => v)).filter(Number.isFinite);
  const max = chart.unit === "ratio" ? 1 : niceCeiling(values.length ? Math.max(...values) * 1.05 : 1);
  const x = (t: number) => m.l + ((t - start) / Math.max(1, end - start)) * w;
  const y = (v: number) => m.t + h - (v / max) * h;
  const parts: string[] = [];
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${w}" height="${h}" fill="#181b1f" stroke="#2c3235"/>`);
  for (const f of [0, 0.5, 1]) {
    const v = max * f;
    parts.push(`<line x1="${m.l}" x2="${m.l + w}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#2c3235"/>`);
    parts.push(`<text x="${m.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${escapeHtml(formatValue(v, chart.unit))}</text>`);
  }
  for (const f of [0, 0.5, 1]) {
    const t = start + (end - start) * f;
    parts.push(`<text x="${x(t).toFixed(1)}" y="${height - 6}" text-anchor="${f === 0 ? "start" : f === 1 ? "end" : "middle"}">${clock(t)}</text>`);
  }
  chart.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    let d = "";
    let pen = false;
    for (const [t, v] of s.points) {
      if (!Number.isFinite(v)) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    if (d) parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(chart.title)}">${parts.join("")}</svg>`;
}

function chartHtml(chart: Chart, start: number, end: number): string {
  const legendItems = chart.series.map((s, i) => {
    const last = [...s.points].reverse().find(([, v]) => Number.isFinite(v));
    return `<span class="key"><i style="background:${COLORS[i % COLORS.length]}"></i>${escapeHtml(s.name)} <b>${last ? escapeHtml(formatValue(last[1], chart.unit)) : "no data"}</b></span>`;
  });
  return `<figure class="panel"><figcaption>${escapeHtml(chart.title)}</figcaption>${svgChart(chart, start, end)}
<div class="legend">${legendItems.join("") || '<span class="nodata">no data</span>'}<details><summary>PromQL</summary>${chart.queries.map((q) => `<code>${escapeHtml(q)}</code>`).join("")}</details></div></figure>`;
}

function toPoints(series: RangeSeries[], scale = 1): Array<[number, number]> {
  // One series expected; several are summed per timestamp.
  const byT = new Map<number, number>();
  for (const s of series) for (const [t, v] of s.values) byT.set(t, (byT.get(t) ?? 0) + v * scale);
  return [...byT.entries()].sort((a, b) => a[0] - b[0]);
}

export interface RenderedPage {
  html: string;
  /** Charts per service host, for checks. */
  charts: Record<string, Chart[]>;
  stats: Record<string, number>;
}

/** Runs the dashboards' queries against Prometheus and renders the page. */
export async function renderDashboardPage(opts: PageOptions): Promise<RenderedPage> {
  const dashboards = opts.dashboards ?? loadDashboards();
  const mesh = dashboards.find((d) => /mesh/i.test(d.title));
  const service = dashboards.find((d) => /service/i.test(d.title));
  if (!mesh || !service) throw new Error("need Istio's Mesh and Service dashboards");
  const stepS = opts.stepS ?? 1;
  const scrapeIntervalS = opts.scrapeIntervalS ?? 1;
  const b = builtins({ scrapeIntervalS, intervalS: stepS, rangeS: opts.end - opts.start });
  const url = opts.prometheusUrl;
  const range = (expr: string) => rangeQuery(url, expr, opts.start, opts.end, stepS);
  const statsAt = opts.statsAt ?? opts.end;

  // Mesh-wide numbers at the end of the range (the Mesh dashboard's stat panels).
  const stats: Record<string, number> = {};
  for (const title of ["Traffic Volume", "Success Rate", "4xxs", "5xxs"]) {
    const q = substitute(findQuery(mesh, title).expr, { values: {}, builtins: b }, mesh.variables);
    const [s] = await instantQuery(url, q, statsAt);
    stats[title] = s ? s.value : NaN;
  }
  // The Mesh dashboard's workload tables.
  const table = async (title: string) => {
    // One row per destination workload (the panel's legend), one column per query.
    const rows = new Map<string, { service: string; values: Record<string, number> }>();
    for (const q of mesh.queries.filter((x) => x.panelTitle === title)) {
      for (const s of await instantQuery(url, substitute(q.expr, { values: {}, builtins: b }, mesh.variables), statsAt)) {
        const key = legend(q.legendFormat, s.metric).replace(/\s+/g, "");
        const row = rows.get(key) ?? { service: "", values: {} };
        if (s.metric.destination_service) row.service = s.metric.destination_service;
        row.values[q.refId] = s.value;
        rows.set(key, row);
      }
    }
    return rows;
  };
  const httpTable = await table("HTTP/gRPC Workloads");
  const tcpTable = await table("TCP Workloads");

  // Per service: the Service dashboard's server-side panels as charts.
  const charts: Record<string, Chart[]> = {};
  for (const svc of opts.services) {
    const values = { service: svc.host, qrep: ["destination"] };
    const sub = (q: PanelQuery) => substitute(q.expr, { values, builtins: b }, service.variables);
    const list: Chart[] = [];
    if (svc.protocol === "tcp") {
      for (const [title, name] of [["TCP Received Bytes", "received"], ["TCP Sent Bytes", "sent"]] as const) {
        const q = sub(findQuery(service, title));
        list.push({ title: `${title} (${name} by the proxies)`, unit: "Bps", series: [{ name, points: toPoints(await range(q)) }], queries: [q] });
      }
    } else {
      const volume = sub(findQuery(service, "Server Request Volume"));
      list.push({ title: "Request rate", unit: "rps", series: [{ name: "requests", points: toPoints(await range(volume)) }], queries: [volume] });
      const success = sub(findQuery(service, "Server Success Rate (non-5xx responses)"));
      list.push({ title: "Success rate (non-5xx)", unit: "ratio", series: [{ name: "success", points: toPoints(await range(success)) }], queries: [success] });
      const duration: Chart = { title: "Request duration", unit: "ms", series: [], queries: [] };
      for (const q of service.queries.filter((x) => x.panelTitle === "Server Request Duration")) {
        const text = sub(q);
        // The dashboard's queries answer in seconds; the chart shows milliseconds.
        duration.series.push({ name: q.legendFormat || q.refId, points: toPoints(await range(text), 1000) });
        duration.queries.push(text);
      }
      list.push(duration);
    }
    charts[svc.host] = list;
  }

  const title = opts.title ?? "Istio dashboards on mesh-telemetry-wasm metrics";
  const statCard = (label: string, v: number, unit: Chart["unit"]) =>
    `<div class="stat"><div class="label">${escapeHtml(label)}</div><div class="value">${escapeHtml(formatValue(v, unit))}</div></div>`;
  const tableHtml = (caption: string, rows: Map<string, { service: string; values: Record<string, number> }>, cols: Array<[string, string, Chart["unit"]]>) =>
    `<table><caption>${escapeHtml(caption)}</caption><tr><th>workload</th>${cols.map(([, h]) => `<th>${escapeHtml(h)}</th>`).join("")}</tr>${
      [...rows.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([k, r]) =>
        `<tr><td title="${escapeHtml(r.service)}">${escapeHtml(k)}</td>${cols.map(([ref, , unit]) => `<td>${escapeHtml(formatValue(r.values[ref], unit))}</td>`).join("")}</tr>`).join("")
    }</table>`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{margin:0;padding:16px 20px;background:#111217;color:#ccccdc;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
h1{font-size:19px;margin:0 0 2px;color:#fff}h2{font-size:15px;margin:14px 0 8px;color:#fff;border-bottom:1px solid #2c3235;padding-bottom:4px}
.sub{color:#8e8e9e;margin-bottom:10px}.row{display:flex;gap:12px;flex-wrap:wrap}
.stats{display:grid;grid-template-columns:repeat(2,150px);gap:8px}
.stat{background:#181b1f;border:1px solid #2c3235;border-radius:4px;padding:4px 12px}
.stat .label{color:#8e8e9e}.stat .value{font-size:20px;color:#73bf69;font-weight:600}
.panel{margin:0;background:#181b1f;border:1px solid #2c3235;border-radius:4px;padding:8px}
.panel figcaption{font-weight:600;color:#fff;margin-bottom:4px}
svg text{fill:#8e8e9e;font-size:10px}
.legend{display:flex;gap:10px;flex-wrap:wrap;margin-top:4px}.key i{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}
.key b{color:#fff;font-weight:600}.nodata{color:#ff7383}
details{color:#8e8e9e;max-width:376px}code{display:block;font-size:10px;white-space:pre-wrap;word-break:break-all;margin-top:2px}
table{border-collapse:collapse;background:#181b1f;border:1px solid #2c3235;align-self:flex-start}caption{text-align:left;font-weight:600;color:#fff;padding:4px 0}
th,td{padding:3px 10px;border-bottom:1px solid #2c3235;text-align:right}th:first-child,td:first-child{text-align:left}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<div class="sub">${clock(opts.start)}–${clock(opts.end)} UTC · Prometheus scrape ${scrapeIntervalS}s · $__rate_interval=${escapeHtml(b.__rate_interval)} · queries from Istio's Mesh and Service dashboards, unchanged but for their variables</div>
<h2>Mesh <span class="sub">at ${clock(statsAt)}</span></h2>
<div class="row"><div class="stats">${statCard("Traffic Volume", stats["Traffic Volume"], "rps")}${statCard("Success Rate", stats["Success Rate"], "ratio")}${statCard("4xxs", stats["4xxs"], "rps")}${statCard("5xxs", stats["5xxs"], "rps")}</div>
${tableHtml("HTTP/gRPC Workloads", httpTable, [["requests", "requests", "rps"], ["p50", "P50", "ms"], ["p90", "P90", "ms"], ["p99", "P99", "ms"], ["success", "success", "ratio"]])}
${tableHtml("TCP Workloads", tcpTable, [["recv", "received", "Bps"], ["sent", "sent", "Bps"]])}
</div>
${opts.services.map((s) => `<h2>${escapeHtml(s.host)} <span class="sub">(${s.protocol === "grpc" ? "gRPC" : s.protocol.toUpperCase()}, reporter=destination)</span></h2>
<div class="row">${charts[s.host].map((c) => chartHtml(c, opts.start, opts.end)).join("\n")}</div>`).join("\n")}
</body></html>
`;
  return { html, charts, stats };
}

/** Renders the page into `dir` (build/dashboards) as index.html. */
export async function writeDashboardPage(opts: PageOptions, dir = PAGE_DIR): Promise<RenderedPage & { path: string }> {
  const page = await renderDashboardPage(opts);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "index.html");
  writeFileSync(path, page.html);
  return { ...page, path };
}

// ---- A tiny static server ----

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png", ".css": "text/css", ".js": "text/javascript", ".json": "application/json",
};

export interface StaticSite {
  url: string;
  close(): Promise<void>;
}

/** Serves `dir` on 127.0.0.1 (a free port unless given); `/` is index.html. */
export async function serveStatic(dir: string, port = 0): Promise<StaticSite> {
  const root = resolve(dir);
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const file = normalize(join(root, path.endsWith("/") ? `${path}index.html` : path));
    if ((file !== root && !file.startsWith(root + sep)) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(readFileSync(file));
  });
  await new Promise<void>((ok) => server.listen(port, "127.0.0.1", ok));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}/`,
    close: () => new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}

// ---- Headless Chromium ----

export function chromiumBinary(): string | undefined {
  for (const bin of [process.env.CHROMIUM_BIN, "chromium", "chromium-browser", "google-chrome"]) {
    if (bin && spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0) return bin;
  }
  return undefined;
}

function chromiumArgs(profile: string): string[] {
  return [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars", `--user-data-dir=${profile}`,
  ];
}

function runChromium(args: string[], timeoutMs = 60000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const bin = chromiumBinary();
  if (!bin) return Promise.reject(new Error("Chromium not found: apt-get install -y chromium"));
  const profile = mkdtempSync(join(tmpdir(), "chromium-profile-"));
  return new Promise((ok, fail) => {
    const child = spawn(bin, [...chromiumArgs(profile), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      rmSync(profile, { recursive: true, force: true });
      fail(e);
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      rmSync(profile, { recursive: true, force: true });
      ok({ code, stdout, stderr });
    });
  });
}

/** Screenshots `url` into `png` with headless Chromium (a fresh profile each time). */
export async function screenshot(url: string, png: string, size = { width: 1280, height: 1000 }): Promise<void> {
  mkdirSync(dirname(png), { recursive: true });
  rmSync(png, { force: true });
  const run = await runChromium([`--screenshot=${resolve(png)}`, `--window-size=${size.width},${size.height}`, url]);
  if (!existsSync(png)) throw new Error(`Chromium wrote no screenshot (exit ${run.code}): ${run.stderr.slice(-2000)}`);
}

/** The DOM as Chromium parsed it (--dump-dom), to check what the browser shows. */
export async function dumpDom(url: string): Promise<string> {
  const run = await runChromium(["--dump-dom", url]);
  if (run.code !== 0) throw new Error(`Chromium --dump-dom exited ${run.code}: ${run.stderr.slice(-2000)}`);
  return run.stdout;
}
