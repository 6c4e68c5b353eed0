// The service graph as a picture: workloads left to right in call order, one arrow per edge
// labelled with its request rate, error rate and p99 latency (HTTP) or its bytes per second
// (TCP, dashed blue); erroring edges (and the workloads answering with errors) in red. SVG written by hand (no graph library), PNG by
// rsvg-convert (Debian librsvg2-bin, installed if missing) or ImageMagick.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { EdgeStats } from "./report.ts";
import { isRoot, run, which } from "./sys.ts";

const NODE_W = 196;
const NODE_H = 60;
const COL_GAP = 170;
const ROW_GAP = 150;
const MARGIN_X = 40;
const TOP = 96;
const RED = "#d0312d";
const OK = "#4f7a5a";
const TCP = "#2f62c4";

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export interface GraphOptions {
  title: string;
  subtitle: string;
  /** Extra text per workload (e.g. "bookinfo · v2"). */
  describe?: (workload: string) => string;
}

interface Placed {
  name: string;
  depth: number;
  x: number;
  y: number;
}

function layout(edges: EdgeStats[]): Map<string, Placed> {
  const names = [...new Set(edges.flatMap((e) => [e.source, e.destination]))];
  const parents = (n: string) => edges.filter((e) => e.destination === n).map((e) => e.source);
  const depth = new Map<string, number>();
  const depthOf = (n: string, seen = new Set<string>()): number => {
    if (depth.has(n)) return depth.get(n)!;
    if (seen.has(n)) return 0; // a cycle: break it
    seen.add(n);
    const ps = parents(n);
    const d = ps.length === 0 ? 0 : 1 + Math.max(...ps.map((p) => depthOf(p, seen)));
    depth.set(n, d);
    return d;
  };
  names.forEach((n) => depthOf(n));
  const columns = Math.max(...depth.values()) + 1;
  const placed = new Map<string, Placed>();
  for (let c = 0; c < columns; c++) {
    const col = names.filter((n) => depth.get(n) === c);
    // Order by the parents' mean height (barycentre), then centre the column on them.
    const desired = (n: string) => {
      const ys = parents(n).map((p) => placed.get(p)?.y).filter((y): y is number => y !== undefined);
      return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : 0;
    };
    col.sort((a, b) => desired(a) - desired(b) || a.localeCompare(b));
    const centre = col.length ? col.reduce((acc, n) => acc + desired(n), 0) / col.length : 0;
    col.forEach((n, i) => {
      placed.set(n, { name: n, depth: c, x: MARGIN_X + c * (NODE_W + COL_GAP), y: centre + (i - (col.length - 1) / 2) * ROW_GAP });
    });
  }
  return placed;
}

function fmtRate(v: number): string {
  return v >= 10 ? v.toFixed(0) : v.toFixed(1);
}

function fmtBytesRate(v: number): string {
  if (v >= 1 << 20) return `${(v / (1 << 20)).toFixed(1)} MiB/s`;
  if (v >= 1024) return `${(v / 1024).toFixed(1)} KiB/s`;
  return `${v.toFixed(0)} B/s`;
}

/** The SVG text of the service graph. */
export function renderServiceGraph(edges: EdgeStats[], opts: GraphOptions): string {
  const placed = layout(edges);
  const nodes = [...placed.values()];
  const minY = Math.min(...nodes.map((n) => n.y));
  for (const n of nodes) n.y = n.y - minY + TOP + 30;
  // Wide enough for the legend line too.
  const width = Math.max(Math.max(...nodes.map((n) => n.x)) + NODE_W + MARGIN_X, 1180);
  const legendY = Math.max(...nodes.map((n) => n.y)) + NODE_H + 70;
  const height = legendY + 40;
  const erroring = new Set(edges.filter((e) => e.errorRate > 0).map((e) => e.destination));
  const maxRps = Math.max(1, ...edges.map((e) => e.rps));
  const maxBytes = Math.max(1, ...edges.map((e) => e.bytesPerSecond));

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Verdana, Arial, sans-serif">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<defs>`);
  for (const [id, colour] of [["ok", OK], ["err", RED], ["tcp", TCP]]) {
    out.push(`<marker id="arrow-${id}" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="14" markerHeight="14" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="${colour}"/></marker>`);
  }
  out.push(`</defs>`);
  out.push(`<text x="${MARGIN_X}" y="38" font-size="21" font-weight="bold" fill="#222">${esc(opts.title)}</text>`);
  out.push(`<text x="${MARGIN_X}" y="64" font-size="13" fill="#555">${esc(opts.subtitle)}</text>`);

  // Edges first, so nodes and labels draw over them.
  const labels: string[] = [];
  for (const e of edges) {
    const a = placed.get(e.source)!;
    const b = placed.get(e.destination)!;
    const tcp = e.protocol === "tcp";
    const bad = e.errorRate > 0;
    const colour = tcp ? TCP : bad ? RED : OK;
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x - 2;
    const y2 = b.y + NODE_H / 2;
    const dx = (x2 - x1) / 2;
    const strokeW = (1.6 + 3.4 * (tcp ? e.bytesPerSecond / maxBytes : e.rps / maxRps)).toFixed(1);
    const dash = tcp ? ` stroke-dasharray="8 5"` : "";
    out.push(`<path d="M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}" fill="none" stroke="${colour}" stroke-width="${strokeW}"${dash} marker-end="url(#arrow-${tcp ? "tcp" : bad ? "err" : "ok"})"/>`);
    // Label at the curve's midpoint: rate, error rate, p99 (HTTP) or bytes/s (TCP), one per line.
    const mx = (x1 + x2) / 2;
    const my = (y1 + y2) / 2;
    const lines = tcp
      ? [
        { text: fmtBytesRate(e.bytesPerSecond), colour: "#222", weight: "bold" },
        { text: "TCP, mTLS", colour: TCP, weight: "normal" },
      ]
      : [
        { text: `${fmtRate(e.rps)} req/s`, colour: "#222", weight: "bold" },
        { text: `${(e.errorRate * 100).toFixed(1)}% errors`, colour: bad ? RED : "#444", weight: bad ? "bold" : "normal" },
        { text: `p99 ${Number.isFinite(e.p99) ? e.p99.toFixed(0) : "-"} ms`, colour: "#444", weight: "normal" },
      ];
    const boxW = 112;
    const boxH = lines.length * 16 + 8;
    labels.push(`<rect x="${mx - boxW / 2}" y="${my - boxH / 2}" width="${boxW}" height="${boxH}" rx="5" fill="#ffffff" fill-opacity="0.94" stroke="${colour}" stroke-width="1"/>`);
    lines.forEach((l, i) => {
      labels.push(`<text x="${mx}" y="${my - boxH / 2 + 18 + i * 16}" font-size="12.5" text-anchor="middle" fill="${l.colour}" font-weight="${l.weight}">${esc(l.text)}</text>`);
    });
  }
  for (const n of nodes) {
    const gateway = n.name.includes("gateway");
    const bad = erroring.has(n.name);
    const fill = gateway ? "#e8f0fe" : "#f3f8ee";
    const stroke = bad ? RED : gateway ? "#3b6fd8" : "#6a9a4e";
    out.push(`<rect x="${n.x}" y="${n.y}" width="${NODE_W}" height="${NODE_H}" rx="10" fill="${fill}" stroke="${stroke}" stroke-width="${bad ? 2.5 : 1.6}"/>`);
    out.push(`<text x="${n.x + NODE_W / 2}" y="${n.y + 26}" font-size="15" font-weight="bold" text-anchor="middle" fill="#1d1d1d">${esc(n.name)}</text>`);
    const detail = opts.describe?.(n.name) ?? "";
    if (detail) out.push(`<text x="${n.x + NODE_W / 2}" y="${n.y + 45}" font-size="12" text-anchor="middle" fill="#555">${esc(detail)}</text>`);
  }
  out.push(...labels);
  out.push(`<line x1="${MARGIN_X}" y1="${legendY - 22}" x2="${width - MARGIN_X}" y2="${legendY - 22}" stroke="#ddd"/>`);
  out.push(`<line x1="${MARGIN_X}" y1="${legendY}" x2="${MARGIN_X + 34}" y2="${legendY}" stroke="${OK}" stroke-width="3"/>`);
  out.push(`<text x="${MARGIN_X + 42}" y="${legendY + 4}" font-size="12.5" fill="#333">no errors</text>`);
  out.push(`<line x1="${MARGIN_X + 130}" y1="${legendY}" x2="${MARGIN_X + 164}" y2="${legendY}" stroke="${RED}" stroke-width="3"/>`);
  const redText = "5xx responses on the edge (red box: the workload answering them)";
  out.push(`<text x="${MARGIN_X + 172}" y="${legendY + 4}" font-size="12.5" fill="#333">${redText}</text>`);
  let legendX = MARGIN_X + 172 + redText.length * 7.4 + 36;
  if (edges.some((e) => e.protocol === "tcp")) {
    out.push(`<line x1="${legendX}" y1="${legendY}" x2="${legendX + 34}" y2="${legendY}" stroke="${TCP}" stroke-width="3" stroke-dasharray="8 5"/>`);
    out.push(`<text x="${legendX + 42}" y="${legendY + 4}" font-size="12.5" fill="#333">TCP (istio_tcp_*, bytes/s)</text>`);
    legendX += 42 + 26 * 7.4 + 36;
  }
  out.push(`<text x="${legendX}" y="${legendY + 4}" font-size="12.5" fill="#333">line width: request rate / bytes</text>`);
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

/** rsvg-convert, installing librsvg2-bin when root and it is missing; else real ImageMagick; else undefined. */
async function pngConverter(): Promise<((svg: string, png: string) => Promise<unknown>) | undefined> {
  if (!which("rsvg-convert") && isRoot() && which("apt-get")) {
    const install = () => run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "librsvg2-bin"], { allowFail: true, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    if ((await install()).code !== 0) {
      await run("apt-get", ["update", "-qq"], { allowFail: true });
      await install();
    }
  }
  if (which("rsvg-convert")) return (svg, png) => run("rsvg-convert", ["--zoom", "1.5", "--format", "png", "--output", png, svg]);
  const magick = which("convert") ? await run("convert", ["-version"], { allowFail: true }) : undefined;
  if (magick && magick.code === 0 && /ImageMagick/.test(magick.stdout)) return (svg, png) => run("convert", ["-density", "144", svg, png]);
  return undefined;
}

/** Writes service-graph.svg and, when a converter exists, service-graph.png into dir. */
export async function writeServiceGraph(edges: EdgeStats[], dir: string, opts: GraphOptions): Promise<{ svg: string; png?: string; pngProblem?: string }> {
  const svg = join(dir, "service-graph.svg");
  writeFileSync(svg, renderServiceGraph(edges, opts));
  const convert = await pngConverter();
  if (!convert) return { svg, pngProblem: "no SVG converter: apt-get install -y librsvg2-bin" };
  const png = join(dir, "service-graph.png");
  try {
    await convert(svg, png);
    return { svg, png };
  } catch (err) {
    return { svg, pngProblem: (err as Error).message.split("\n")[0] };
  }
}
