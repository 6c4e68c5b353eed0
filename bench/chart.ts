// The benchmark chart, written as SVG by hand (rsvg-convert makes the PNG): per configuration,
// Envoy CPU per request (client + server sidecar, with the spread over repetitions) and the
// latency percentiles at 1000 req/s. Skipped configurations keep their row, with the reason.

const W = 1500;
const ROW = 74;
const TOP = 118;
const LEFT = 215;
const PANEL = 540;
const GAP = 100;
const COLORS = { client: "#2f6db5", server: "#8fb8e8", p50: "#7fbf7b", p90: "#f1a340", p99: "#d7301f", whisker: "#222" };

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function text(x: number, y: number, s: string, attrs = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
}

function axis(x0: number, y0: number, height: number, max: number, unit: string): string {
  let out = "";
  const ticks = 5;
  for (let i = 0; i <= ticks; i++) {
    const v = (max * i) / ticks;
    const x = x0 + (PANEL * i) / ticks;
    out += `<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + height}" stroke="#ddd"/>`;
    out += text(x, y0 + height + 18, `${Math.round(v)}`, 'text-anchor="middle" font-size="13" fill="#444"');
  }
  out += text(x0 + PANEL / 2, y0 + height + 38, unit, 'text-anchor="middle" font-size="13" fill="#444"');
  return out;
}

function logAxis(x0: number, y0: number, height: number, lo: number, hi: number, unit: string): string {
  let out = "";
  const span = Math.log10(hi) - Math.log10(lo);
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    for (const m of [1, 2, 5]) {
      const v = d * m;
      if (v > hi * 1.0001) break;
      const x = x0 + (PANEL * (Math.log10(v) - Math.log10(lo))) / span;
      out += `<line x1="${x.toFixed(1)}" y1="${y0}" x2="${x.toFixed(1)}" y2="${y0 + height}" stroke="${m === 1 ? "#ccc" : "#eee"}"/>`;
      out += text(x, y0 + height + 18, v >= 1000 ? `${v / 1000}k` : `${v}`, `text-anchor="middle" font-size="${m === 1 ? 13 : 11}" fill="#444"`);
    }
  }
  out += text(x0 + PANEL / 2, y0 + height + 38, unit, 'text-anchor="middle" font-size="13" fill="#444"');
  return out;
}

export function renderChart(r: any): string {
  const configs: any[] = r.configurations;
  const height = configs.length * ROW;
  const H = TOP + height + 130;
  const measured = configs.filter((c) => c.status === "measured");
  // Room right of the longest bar for its label.
  const cpuMax = niceMax(Math.max(...measured.map((c) => r.spread[c.id].cpu_h1.max)) * 1.3);
  // Latency on a log scale: a loaded machine's tail is orders of magnitude above its median.
  const latLo = 10 ** Math.floor(Math.log10(Math.max(1, Math.min(...measured.map((c) => r.spread[c.id].p50.min)))));
  const latHi = 10 ** Math.ceil(Math.log10(Math.max(...measured.map((c) => r.spread[c.id].p99.max)) * 1.05));
  const x1 = LEFT;
  const x2 = LEFT + PANEL + GAP;
  let s = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif">`;
  s += `<rect width="${W}" height="${H}" fill="white"/>`;
  s += text(20, 34, "mesh-telemetry-wasm: overhead against bare Envoy", 'font-size="22" font-weight="bold"');
  s += text(
    20,
    58,
    `Envoy ${r.envoy_version.split("/")[1] ?? r.envoy_version}, --concurrency 1, client + server sidecar pair, loopback, 1 KiB responses; ` +
      `median of ${r.repetitions} interleaved repetitions (${r.mode} run, ${r.generated_at.slice(0, 16).replace("T", " ")} UTC)`,
    'font-size="14" fill="#333"',
  );
  s += text(20, 78, `${r.machine.cores} cores (${r.machine.cpu_model}), load average at start ${r.machine.loadavg_start.join(" ")}; module ${r.module_bytes} bytes`, 'font-size="14" fill="#333"');

  s += text(x1, TOP - 14, "Envoy CPU per request, HTTP/1.1 closed loop (µs, both sidecars)", 'font-size="15" font-weight="bold"');
  s += text(x2, TOP - 14, "Latency at 1000 req/s over 16 connections (µs)", 'font-size="15" font-weight="bold"');
  s += axis(x1, TOP, height, cpuMax, "µs of CPU per request (bars: median; whisker: min–max)");
  s += logAxis(x2, TOP, height, latLo, latHi, "µs, log scale (bars: median; whisker: min–max of the repetitions)");

  const bareCpu = r.cpu_us_per_request.bare;
  configs.forEach((c, i) => {
    const y = TOP + i * ROW;
    s += text(LEFT - 12, y + ROW / 2 - 2, c.label, 'text-anchor="end" font-size="14" font-weight="bold"');
    s += text(LEFT - 12, y + ROW / 2 + 15, c.id, 'text-anchor="end" font-size="12" fill="#666"');
    if (c.status !== "measured") {
      s += text(x1 + 8, y + ROW / 2 + 5, `${c.reason ?? "not measured"}`.slice(0, 150), 'font-size="13" fill="#a33" font-style="italic"');
      return;
    }
    // CPU: stacked client + server, whisker over the pair's range.
    const by = r.cpu_us_per_request_by_sidecar[c.id];
    const sc = (v: number) => (PANEL * v) / cpuMax;
    const barY = y + 14;
    const barH = ROW - 30;
    s += `<rect x="${x1}" y="${barY}" width="${sc(by.client).toFixed(1)}" height="${barH}" fill="${COLORS.client}"/>`;
    s += `<rect x="${(x1 + sc(by.client)).toFixed(1)}" y="${barY}" width="${sc(by.server).toFixed(1)}" height="${barH}" fill="${COLORS.server}"/>`;
    const sp = r.spread[c.id].cpu_h1;
    const wy = barY + barH / 2;
    s += `<line x1="${(x1 + sc(sp.min)).toFixed(1)}" y1="${wy}" x2="${(x1 + sc(sp.max)).toFixed(1)}" y2="${wy}" stroke="${COLORS.whisker}" stroke-width="2"/>`;
    s += `<line x1="${(x1 + sc(sp.min)).toFixed(1)}" y1="${wy - 7}" x2="${(x1 + sc(sp.min)).toFixed(1)}" y2="${wy + 7}" stroke="${COLORS.whisker}" stroke-width="2"/>`;
    s += `<line x1="${(x1 + sc(sp.max)).toFixed(1)}" y1="${wy - 7}" x2="${(x1 + sc(sp.max)).toFixed(1)}" y2="${wy + 7}" stroke="${COLORS.whisker}" stroke-width="2"/>`;
    const cpu = r.cpu_us_per_request[c.id];
    const label = c.id === "bare" ? `${cpu.toFixed(0)}` : `${cpu.toFixed(0)}  (×${(cpu / bareCpu).toFixed(2)})`;
    s += text(x1 + sc(Math.max(sp.max, cpu)) + 8, wy + 5, label, 'font-size="14" font-weight="bold"');

    // Latency: p50, p90, p99 bars with whiskers.
    const sl = (v: number) => (PANEL * (Math.log10(Math.min(Math.max(v, latLo), latHi)) - Math.log10(latLo))) / (Math.log10(latHi) - Math.log10(latLo));
    const keys = ["p50", "p90", "p99"] as const;
    const h = (ROW - 22) / 3;
    keys.forEach((k, j) => {
      const ly = y + 10 + j * h;
      const v = r.spread[c.id][k];
      s += `<rect x="${x2}" y="${ly.toFixed(1)}" width="${sl(v.median).toFixed(1)}" height="${(h - 3).toFixed(1)}" fill="${COLORS[k]}"/>`;
      const my = ly + (h - 3) / 2;
      s += `<line x1="${(x2 + sl(v.min)).toFixed(1)}" y1="${my.toFixed(1)}" x2="${(x2 + sl(v.max)).toFixed(1)}" y2="${my.toFixed(1)}" stroke="${COLORS.whisker}" stroke-width="1.2"/>`;
      const label = `${k} ${Math.round(v.median)}`;
      const at = x2 + Math.max(sl(v.max), sl(v.median)) + 6;
      const fits = at + label.length * 7 < x2 + PANEL + GAP - 10;
      s += fits
        ? text(at, my + 4.5, label, 'font-size="12" fill="#222"')
        : text(x2 + sl(v.median) - 4, my + 4.5, label, 'font-size="12" fill="white" text-anchor="end" font-weight="bold"');
    });
  });

  // Legends.
  const ly = TOP + height + 58;
  s += `<rect x="${x1}" y="${ly}" width="14" height="14" fill="${COLORS.client}"/>` + text(x1 + 20, ly + 12, "client sidecar (outbound)", 'font-size="13"');
  s += `<rect x="${x1 + 200}" y="${ly}" width="14" height="14" fill="${COLORS.server}"/>` + text(x1 + 220, ly + 12, "server sidecar (inbound)", 'font-size="13"');
  s += text(x1, ly + 34, `(×n): relative to bare Envoy; target for ${r.full_configuration}: ×1.10`, 'font-size="13" fill="#444"');
  (["p50", "p90", "p99"] as const).forEach((k, j) => {
    s += `<rect x="${x2 + j * 90}" y="${ly}" width="14" height="14" fill="${COLORS[k]}"/>` + text(x2 + j * 90 + 20, ly + 12, k, 'font-size="13"');
  });
  s += text(x2, ly + 34, `added p90 / p99, ${r.full_configuration} − bare: ${r.added_p90_us} / ${r.added_p99_us} µs`, 'font-size="13" fill="#444"');
  s += text(x2, ly + 52, "targets: 50 / 100 µs", 'font-size="13" fill="#444"');
  s += "</svg>\n";
  return s;
}
