// The service graph as a picture: workloads left to right in call order, one arrow per edge
// labelled with its request rate, error rate and p99 latency (HTTP) or its bytes per second
// (TCP, dashed blue); erroring edges (and the workloads answering with errors) in red. Graphviz
// `dot` (Debian graphviz) places the boxes and routes the edges; the SVG is drawn here from its
// positions so the look (label boxes on the edges, legend, title) stays ours. PNG by rsvg-convert
// (Debian librsvg2-bin) or ImageMagick; missing tools are installed when root.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { EdgeStats } from "./report.ts";
import { isRoot, run, which } from "./sys.ts";

const NODE_W = 196;
const NODE_H = 60;
const LABEL_W = 112;
const MARGIN_X = 40;
const TOP = 96;
const RED = "#d0312d";
const OK = "#4f7a5a";
const TCP = "#2f62c4";
// Graphviz works in points, 72 to the inch; one point is one SVG unit here.
const PT = 72;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export interface GraphOptions {
  title: string;
  subtitle: string;
  /** Extra text per workload (e.g. "bookinfo · v2"). */
  describe?: (workload: string) => string;
}

interface Point {
  x: number;
  y: number;
}

interface Layout {
  width: number;
  height: number;
  /** Centre of each workload's box. */
  nodes: Map<string, Point>;
  /** Per edge (same order as the input): centre of its label box, and the curve into and out of it (SVG path data). */
  edges: { label: Point; into: string; out: string }[];
}

interface DotJson {
  bb: string;
  objects?: { _gvid: number; name: string; pos: string }[];
  edges?: { tail: number; head: number; pos: string }[];
}

/**
 * Lays the graph out with `dot`. Each edge's label box is a node of its own between the two
 * workloads, so dot keeps it clear of everything else and the edge runs through it, as drawn.
 */
async function layout(edges: EdgeStats[], labelHeight: (e: EdgeStats) => number): Promise<Layout> {
  const names = [...new Set(edges.flatMap((e) => [e.source, e.destination]))];
  const id = (n: string) => `w${names.indexOf(n)}`;
  const inch = (v: number) => (v / PT).toFixed(4);
  // The edges a depth-first walk finds closing a cycle, as dot's own walk does to rank the rest.
  const backEdges = new Set<EdgeStats>();
  const state = new Map<string, "open" | "done">();
  const walk = (n: string) => {
    state.set(n, "open");
    for (const e of edges.filter((x) => x.source === n)) {
      if (state.get(e.destination) === "open") backEdges.add(e);
      else if (!state.has(e.destination)) walk(e.destination);
    }
    state.set(n, "done");
  };
  for (const n of names) if (!state.has(n)) walk(n);
  const dot = [
    "digraph mesh {",
    `  rankdir=LR; ranksep=0.6; nodesep=0.75; splines=spline;`,
    `  node [shape=box, fixedsize=true, label=""];`,
    ...names.map((n) => `  ${id(n)} [width=${inch(NODE_W)}, height=${inch(NODE_H)}];`),
    ...edges.flatMap((e, i) => {
      // Forward edges leave a box's right side and enter the next one's left, as the layers read;
      // an edge closing a cycle has to run backwards, where those ports would loop it round.
      const ports = backEdges.has(e) ? "" : ", tailport=e, headport=w";
      return [
        `  e${i} [width=${inch(LABEL_W)}, height=${inch(labelHeight(e))}];`,
        `  ${id(e.source)} -> e${i} [dir=none${ports}];`,
        // Leaves room for the arrowhead (14 units) drawn at the destination.
        `  e${i} -> ${id(e.destination)} [arrowsize=1.4${ports}];`,
      ];
    }),
    "}",
  ].join("\n");
  const res = await run("dot", ["-Tjson0"], { input: dot });
  const json = JSON.parse(res.stdout) as DotJson;
  const [, , bbW, bbH] = json.bb.split(",").map(Number);
  // dot's y grows upwards; SVG's downwards.
  const point = (s: string): Point => {
    const [x, y] = s.split(",").map(Number);
    return { x, y: bbH - y };
  };
  const centre = new Map<string, Point>();
  const byGvid = new Map<number, string>();
  for (const o of json.objects ?? []) {
    centre.set(o.name, point(o.pos));
    byGvid.set(o._gvid, o.name);
  }
  // A spline is "[e,x,y ]p0 p1 p2 p3 ...", cubic Béziers sharing end points; "e," is the arrow tip.
  const path = (pos: string): string => {
    const parts = pos.trim().split(/\s+/);
    const tip = parts[0].startsWith("e,") ? point(parts.shift()!.slice(2)) : undefined;
    const pts = parts.map(point);
    const f = (p: Point) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`;
    let d = `M${f(pts[0])}`;
    for (let i = 1; i + 2 < pts.length; i += 3) d += ` C${f(pts[i])} ${f(pts[i + 1])} ${f(pts[i + 2])}`;
    return tip ? `${d} L${f(tip)}` : d;
  };
  const splines = new Map<string, string>();
  for (const e of json.edges ?? []) splines.set(`${byGvid.get(e.tail)}>${byGvid.get(e.head)}`, path(e.pos));
  return {
    width: bbW,
    height: bbH,
    nodes: new Map(names.map((n) => [n, centre.get(id(n))!])),
    edges: edges.map((e, i) => ({
      label: centre.get(`e${i}`)!,
      into: splines.get(`${id(e.source)}>e${i}`)!,
      out: splines.get(`e${i}>${id(e.destination)}`)!,
    })),
  };
}

function fmtRate(v: number): string {
  return v >= 10 ? v.toFixed(0) : v.toFixed(1);
}

function fmtBytesRate(v: number): string {
  if (v >= 1 << 20) return `${(v / (1 << 20)).toFixed(1)} MiB/s`;
  if (v >= 1024) return `${(v / 1024).toFixed(1)} KiB/s`;
  return `${v.toFixed(0)} B/s`;
}

/** The SVG text of the service graph (runs `dot` for the layout). */
export async function renderServiceGraph(edges: EdgeStats[], opts: GraphOptions): Promise<string> {
  const labelLines = (e: EdgeStats) => (e.protocol === "tcp" ? 2 : 3);
  const labelHeight = (e: EdgeStats) => labelLines(e) * 16 + 8;
  await ensureTool("dot", "graphviz");
  const placed = await layout(edges, labelHeight);
  const originY = TOP + 30;
  // Wide enough for the legend line too.
  const width = Math.max(MARGIN_X + placed.width + MARGIN_X, 1180);
  const legendY = originY + placed.height + 70;
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
  out.push(`<g transform="translate(${MARGIN_X},${originY})">`);

  // Edges first, so nodes and labels draw over them.
  const labels: string[] = [];
  edges.forEach((e, i) => {
    const { label, into, out: onward } = placed.edges[i];
    const tcp = e.protocol === "tcp";
    const bad = e.errorRate > 0;
    const colour = tcp ? TCP : bad ? RED : OK;
    const strokeW = (1.6 + 3.4 * (tcp ? e.bytesPerSecond / maxBytes : e.rps / maxRps)).toFixed(1);
    const dash = tcp ? ` stroke-dasharray="8 5"` : "";
    const stroke = `fill="none" stroke="${colour}" stroke-width="${strokeW}"${dash}`;
    // Into the label box, then on from it to the destination, arrowhead there only.
    out.push(`<path d="${into}" ${stroke}/>`);
    out.push(`<path d="${onward}" ${stroke} marker-end="url(#arrow-${tcp ? "tcp" : bad ? "err" : "ok"})"/>`);
    // Rate, error rate, p99 (HTTP) or bytes/s (TCP), one per line, in the box dot made room for.
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
    const boxH = labelHeight(e);
    const { x: mx, y: my } = label;
    labels.push(`<rect x="${mx - LABEL_W / 2}" y="${my - boxH / 2}" width="${LABEL_W}" height="${boxH}" rx="5" fill="#ffffff" fill-opacity="0.94" stroke="${colour}" stroke-width="1"/>`);
    lines.forEach((l, j) => {
      labels.push(`<text x="${mx}" y="${my - boxH / 2 + 18 + j * 16}" font-size="12.5" text-anchor="middle" fill="${l.colour}" font-weight="${l.weight}">${esc(l.text)}</text>`);
    });
  });
  for (const [name, c] of placed.nodes) {
    const gateway = name.includes("gateway");
    const bad = erroring.has(name);
    const fill = gateway ? "#e8f0fe" : "#f3f8ee";
    const stroke = bad ? RED : gateway ? "#3b6fd8" : "#6a9a4e";
    const x = c.x - NODE_W / 2;
    const y = c.y - NODE_H / 2;
    out.push(`<rect x="${x}" y="${y}" width="${NODE_W}" height="${NODE_H}" rx="10" fill="${fill}" stroke="${stroke}" stroke-width="${bad ? 2.5 : 1.6}"/>`);
    out.push(`<text x="${c.x}" y="${y + 26}" font-size="15" font-weight="bold" text-anchor="middle" fill="#1d1d1d">${esc(name)}</text>`);
    const detail = opts.describe?.(name) ?? "";
    if (detail) out.push(`<text x="${c.x}" y="${y + 45}" font-size="12" text-anchor="middle" fill="#555">${esc(detail)}</text>`);
  }
  out.push(...labels);
  out.push(`</g>`);
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

/** Installs a Debian package for a missing tool when root (as make deps would have). */
async function ensureTool(tool: string, pkg: string): Promise<void> {
  if (which(tool) || !isRoot() || !which("apt-get")) return;
  const install = () => run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", pkg], { allowFail: true, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if ((await install()).code !== 0) {
    await run("apt-get", ["update", "-qq"], { allowFail: true });
    await install();
  }
}

/** rsvg-convert (librsvg2-bin); else real ImageMagick; else undefined. */
async function pngConverter(): Promise<((svg: string, png: string) => Promise<unknown>) | undefined> {
  await ensureTool("rsvg-convert", "librsvg2-bin");
  if (which("rsvg-convert")) return (svg, png) => run("rsvg-convert", ["--zoom", "1.5", "--format", "png", "--output", png, svg]);
  const magick = which("convert") ? await run("convert", ["-version"], { allowFail: true }) : undefined;
  if (magick && magick.code === 0 && /ImageMagick/.test(magick.stdout)) return (svg, png) => run("convert", ["-density", "144", svg, png]);
  return undefined;
}

/** Writes service-graph.svg and, when a converter exists, service-graph.png into dir. */
export async function writeServiceGraph(edges: EdgeStats[], dir: string, opts: GraphOptions): Promise<{ svg: string; png?: string; pngProblem?: string }> {
  const svg = join(dir, "service-graph.svg");
  writeFileSync(svg, await renderServiceGraph(edges, opts));
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
