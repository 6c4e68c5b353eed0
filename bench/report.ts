// Writes the results section of bench/README.md from bench/results/latest.json: machine, versions
// and the command, the side-by-side table, the targets, the heap check and the host-call profile,
// with before/after columns when bench/results/baseline.json (an earlier latest.json) exists.
// Only the text between the markers is replaced; the rest of the README is hand-written.
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const BEGIN = "<!-- bench:results:begin (written by bench/run.ts; do not edit by hand) -->";
const END = "<!-- bench:results:end -->";

const f0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–");
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "–");
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "–");
const show2 = (x: any) => (x ? `${f2(x.median)} (${f2(x.min)}–${f2(x.max)})` : "–");

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

function hostCallRows(side: any): Array<[string, number, number]> {
  // [callback host-call, calls per request, µs per call (wall clock, counting variant)]
  return Object.entries(side.detail.counts as Record<string, [number, number]>)
    .map(([k, [c, ns]]) => [k.replace(/env\./, "").replace(/proxy_on_/, "on_"), c, ns / 1000] as [string, number, number])
    .sort((a, b) => b[1] - a[1]);
}

function keyRows(side: any): Array<[string, number]> {
  return Object.entries(side.detail.detail as Record<string, [number, number]>)
    .map(([k, [c]]) => [k.replace(/env\./g, "").replace(/proxy_on_/, "on_"), c] as [string, number])
    .sort((a, b) => a[0].localeCompare(b[0]));
}

export function resultsMarkdown(r: any, baseline: any | null): string {
  const out: string[] = [];
  const measured = r.configurations.filter((c: any) => c.status === "measured");
  const bare = r.cpu_us_per_request.bare;
  out.push(`## Latest results`);
  out.push("");
  out.push(
    `Produced by \`${r.command}\` (${r.mode} run, ${r.repetitions} repetitions, ${Math.round(r.duration_s)} s) on ${r.generated_at.slice(0, 19).replace("T", " ")} UTC.`,
  );
  out.push("");
  out.push(
    `- Machine: ${r.machine.cores} cores, ${r.machine.cpu_model}, Linux ${r.machine.kernel}. Load average at start ${r.machine.loadavg_start.join(" ")}, at end ${r.machine.loadavg_end.join(" ")}; ` +
      `cores busy with other work just before the start: ${r.machine.busy_cores_before_start}, just after the end: ${r.machine.busy_cores_after_end}.`,
  );
  out.push(`- Envoy ${r.envoy_version}; h2load ${r.tools.h2load}; fortio ${r.tools.fortio}; Node.js ${r.tools.node}; AssemblyScript ${r.tools.assemblyscript}.`);
  out.push(`- Module under test: \`${r.module}\` built from ${r.module_source}, ${r.module_bytes} bytes (sha256 ${r.module_sha256.slice(0, 16)}…); empty filter ${r.empty_filter_bytes} bytes.`);
  out.push(`- Full configuration: \`${r.full_configuration}\` (${r.full_configuration_note}).`);
  out.push("");
  out.push("Medians over the repetitions; the spread is min–max. CPU is both sidecars together (client + server), per request.");
  out.push("");
  const rows: string[][] = [];
  for (const c of r.configurations) {
    if (c.status !== "measured") {
      rows.push([`${c.label} (\`${c.id}\`)`, `*${c.reason}*`, "", "", "", "", "", "", "", ""]);
      continue;
    }
    const s = r.spread[c.id];
    const by = r.cpu_us_per_request_by_sidecar[c.id];
    const lat = r.latency_us[c.id];
    const add = r.added_latency_us[c.id];
    rows.push([
      `${c.label} (\`${c.id}\`)`,
      `${f1(r.cpu_us_per_request[c.id])} (${f1(by.client)} + ${f1(by.server)})`,
      c.id === "bare" ? "1" : f2(r.cpu_us_per_request[c.id] / bare),
      `${f1(s.cpu_h1.min)}–${f1(s.cpu_h1.max)}`,
      f1(r.cpu_us_per_request_at_1000rps[c.id]),
      `${f0(r.throughput_rps[c.id].h1)} / ${f0(r.throughput_rps[c.id].h2)}`,
      `${f0(lat.p50)} / ${f0(lat.p90)} / ${f0(lat.p99)}`,
      `${f0(s.p90.min)}–${f0(s.p90.max)}`,
      add ? `${f0(add.p90)} / ${f0(add.p99)}` : "",
      `${f0(s.qps_at_latency.median)} / ${f2(s.pair_cores_at_1000rps.median)}`,
    ]);
  }
  out.push(
    table(
      ["configuration", "CPU µs/req, h1 (client + server)", "× bare", "CPU spread", "CPU µs/req at 1000 req/s", "req/s h1 / h2", "p50 / p90 / p99 µs at 1000 req/s", "p90 spread", "added p90 / p99 µs", "achieved req/s / pair cores busy, latency run"],
      rows,
    ),
  );
  out.push("");
  const pr = r.paired;
  if (pr) {
    const show = (x: any) => (x ? `${f2(x.median)} (${f2(x.min)}–${f2(x.max)})` : "–");
    out.push(
      "Ratios within each repetition (configuration / bare in the same repetition, minutes apart), median and min–max over the repetitions; " +
        "these are the steadiest comparison on a drifting machine:",
    );
    out.push("");
    const ids = measured.filter((c: any) => c.id !== "bare").map((c: any) => c.id);
    const rowsP = ids.map((id: string) => [
      `\`${id}\``,
      show(pr.cpu_ratio_to_bare_h1[id]),
      show(pr.throughput_ratio_to_bare_h1[id]),
      show(pr.cpu_ratio_to_bare_h2[id]),
      pr.cpu_ratio_to_full_h1 ? show(pr.cpu_ratio_to_full_h1[id]) : "",
    ]);
    const headP = ["configuration", "CPU/req ÷ bare, h1", "req/s ÷ bare, h1", "CPU/req ÷ bare, h2"];
    if (pr.cpu_ratio_to_full_h1) headP.push(`CPU/req ÷ \`${r.full_configuration}\`, h1`);
    out.push(table(headP, rowsP.map((row: string[]) => row.slice(0, headP.length))));
    out.push("");
  }
  const mt = r.mtls;
  if (mt && pr?.cpu_ratio_to_bare_mtls_h1) {
    // Beside the plaintext ratios above, which stay the headline.
    out.push(
      `With mutual TLS between the sidecars, as Istio's own benchmark runs (h1 phase only; ${mt.note.replace(/^bare and the full configuration with /, "")}): ` +
        `\`full-mtls\` ${f1(mt.cpu_us_per_request["full-mtls"])} µs/req against \`bare-mtls\` ${f1(mt.cpu_us_per_request["bare-mtls"])} µs/req, ` +
        `CPU/req ÷ bare-mtls ${show2(pr.cpu_ratio_to_bare_mtls_h1["full-mtls"])}, req/s ÷ bare-mtls ${show2(pr.throughput_ratio_to_bare_mtls_h1["full-mtls"])} ` +
        `(within each repetition, median and min–max); mTLS alone makes bare Envoy's CPU per request ${f2(mt.cpu_ratio_bare_mtls_to_bare)} × its plaintext figure.`,
    );
    out.push("");
  }
  out.push("### Targets");
  out.push("");
  out.push(table(["target", "goal", "measured", ""], r.targets.map((t: any) => [t.name, t.target, typeof t.value === "number" ? String(t.value) : "–", t.met ? "met" : "**missed**"])));
  out.push("");
  const h = r.heap_check;
  out.push("### VM heap");
  out.push("");
  out.push(
    `\`mesh_telemetry_vm_heap_bytes\` of the \`${h.config}\` pair, after a warm-up of ${f0(h.warmup_requests)} requests at the check's load ` +
      `(client ${f0(h.before_warmup?.client)} → ${f0(h.before.client)}, server ${f0(h.before_warmup?.server)} → ${f0(h.before.server)} bytes), then before and after ${f0(h.requests)} requests` +
      `${h.complete ? "" : ` (**stopped short of ${f0(h.requests_target)}**: the time budget ran out)`}, in ${h.seconds} s: ` +
      `client ${f0(h.before.client)} → ${f0(h.after.client)} bytes, server ${f0(h.before.server)} → ${f0(h.after.server)} bytes ` +
      `(the gauge is the VM's linear memory, which only grows, in 64 KiB pages).`,
  );
  const pc = h.per_configuration ?? {};
  const pcRows = Object.entries(pc).map(([id, x]: [string, any]) => `\`${id}\` ${f0(x.after_warmup.client)}/${f0(x.after_warmup.server)} → ${f0(x.after_repetitions.client)}/${f0(x.after_repetitions.server)}`);
  if (pcRows.length) out.push(`Every plugin configuration, after the warm-up → after the repetitions (client/server bytes): ${pcRows.join("; ")}.`);
  const traj = (h.trajectory ?? []).map((t: any) => `${f0(t.requests)}: ${f0(t.client)}/${f0(t.server)}`).join("; ");
  if (traj) out.push(`Trajectory (requests: client/server bytes): ${traj}.`);
  out.push("");
  if (r.host_calls) {
    const hc = r.host_calls;
    out.push("### Hot path: host calls per request");
    out.push("");
    out.push(
      `Counted by the counting variant (bench/hostcalls.ts) on \`${hc.config}\`, ${hc.requests} sequential requests after a warm-up. ` +
        `Per request: client sidecar **${f1(hc.client.total)}** host calls in ${f1(hc.client.callbacks)} VM entries, server sidecar **${f1(hc.server.total)}** in ${f1(hc.server.callbacks)}.`,
    );
    out.push("");
    const cand = r.host_calls_candidate;
    if (cand) {
      out.push(
        `Candidate (\`${r.candidate.module}\`, ${r.candidate.label}): client sidecar **${f1(cand.client.total)}** host calls in ${f1(cand.client.callbacks)} VM entries, ` +
          `server sidecar **${f1(cand.server.total)}** in ${f1(cand.server.callbacks)}.`,
      );
      out.push("");
    }
    const sides: Array<[string, any]> = [["client", hc.client], ["server", hc.server]];
    if (cand) sides.push(["candidate client", cand.client], ["candidate server", cand.server]);
    const maps = sides.map(([, side]) => new Map(hostCallRows(side).map(([k, c]) => [k, c])));
    const keys = [...new Set(maps.flatMap((m) => [...m.keys()]))].sort((a, b) => (maps[0].get(b) ?? 0) - (maps[0].get(a) ?? 0));
    out.push(table(["callback, host call (calls per request)", ...sides.map(([n]) => n)], [
      ...keys.map((k) => [k, ...maps.map((m) => f2(m.get(k) ?? 0))]),
      ["**total host calls**", ...sides.map(([, side]) => `**${f1(side.total)}**`)],
      ["VM entries", ...sides.map(([, side]) => f1(side.callbacks))],
      ["µs inside the VM (wall clock, counting variant)", ...sides.map(([, side]) => f1(side.vm_ns / 1000))],
    ]));
    out.push("");
    out.push("<details><summary>Per key (property path or header name)</summary>");
    out.push("");
    const kmaps = sides.map(([, side]) => new Map(keyRows(side)));
    const all = [...new Set(kmaps.flatMap((m) => [...m.keys()]))].sort();
    out.push(table(["callback, host call, key", ...sides.map(([n]) => n)], all.map((k) => [k, ...kmaps.map((m) => f2(m.get(k) ?? 0))])));
    out.push("");
    out.push("</details>");
    out.push("");
  }
  if (r.host_call_cost_us) {
    const hc = r.host_call_cost_us;
    out.push("### Price of one host call in this Envoy");
    out.push("");
    out.push(
      `The probe module (bench/empty-filter/probe.ts) makes ${hc.calls_per_request} calls of one kind per request; ` +
        `Envoy CPU per request minus the probe with none (${f1(hc.cpu_us_per_request.empty.median)} µs), divided by ${hc.calls_per_request}. ` +
        `${hc.repetitions} interleaved repetitions of ${hc.requests} requests, one Envoy, no sidecar pair.`,
    );
    out.push("");
    out.push(
      `Same Envoy, same run: no filter ${f1(hc.cpu_us_per_request.bare.median)} µs/req; the empty filter exporting only the callbacks telemetry needs (as the plugin does; the \`empty\` configuration) ${f1(hc.cpu_us_per_request.empty_minimal_exports.median)}; ` +
        `the empty filter with every SDK export ${f1(hc.cpu_us_per_request.empty.median)}. ` +
        `So the empty filter's floor is ${f1(hc.empty_filter_floor_us)} µs per request per Envoy, and ` +
        (hc.vm_entry_us > 0
          ? `one VM entry costs about ${f2(hc.vm_entry_us)} µs (${hc.vm_entries_removed_by_minimal_exports} entries per request fewer with minimal exports).`
          : `the price of a VM entry (${hc.vm_entries_removed_by_minimal_exports} entries per request fewer with minimal exports) is below this run's noise: the difference came out ${f2(hc.vm_entry_us)} µs.`),
    );
    out.push("");
    out.push(table(["host call", "µs of CPU per call", "CPU µs/req with the calls (min–max)"], hc.kinds.map((k: any) => [k.label, f2(k.us_per_call), `${f1(k.cpu_us_per_request.median)} (${f1(k.cpu_us_per_request.min)}–${f1(k.cpu_us_per_request.max)})`])));
    out.push("");
  }
  if (baseline) {
    out.push("### Before / after");
    out.push("");
    out.push(`Before: \`bench/results/baseline.json\` (${baseline.generated_at?.slice(0, 16).replace("T", " ")} UTC, module ${baseline.module_bytes} bytes). After: this run.`);
    out.push("");
    const row = (name: string, get: (x: any) => number, fmt = f1) => [name, fmt(get(baseline)), fmt(get(r))];
    const rowsBA = [
      row("host calls per request, client sidecar", (x) => x.host_calls?.client?.total ?? NaN),
      row("host calls per request, server sidecar", (x) => x.host_calls?.server?.total ?? NaN),
      row("VM entries per request, client sidecar", (x) => x.host_calls?.client?.callbacks ?? NaN),
      ...measured.map((c: any) => row(`CPU µs/req, ${c.id}`, (x) => x.cpu_us_per_request?.[c.id] ?? NaN)),
      row("CPU ratio, full / bare", (x) => x.cpu_overhead_ratio_full, f2),
      row("throughput ratio, full / bare", (x) => x.throughput_ratio_full, f2),
      row("added p90 µs", (x) => x.added_p90_us, f0),
      row("added p99 µs", (x) => x.added_p99_us, f0),
      row("module bytes", (x) => x.module_bytes, f0),
    ];
    out.push(table(["", "before", "after"], rowsBA));
    out.push("");
  }
  return out.join("\n");
}

export function writeReadme(path: string, results: any, baseline: any | null): void {
  const section = `${BEGIN}\n${resultsMarkdown(results, baseline)}\n${END}`;
  const text = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmark\n\n";
  const begin = text.indexOf("<!-- bench:results:begin");
  const end = text.indexOf(END);
  const next = begin >= 0 && end > begin ? text.slice(0, begin) + section + text.slice(end + END.length) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(path, next);
}
