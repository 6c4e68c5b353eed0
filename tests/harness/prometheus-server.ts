// A real Prometheus server (Debian's `prometheus`) scraping Envoy admin endpoints, and a small
// client for its HTTP query API.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { eventually, freePort, httpRequest, stopProcess } from "./envoy.ts";

export interface ScrapeTarget {
  /** host:port of an Envoy admin listener. */
  address: string;
  /** Extra target labels, e.g. { pod: "reviews-v2" }. */
  labels?: Record<string, string>;
}

export interface PromResult {
  metric: Record<string, string>;
  value: number;
}

export class PrometheusServer {
  constructor(
    readonly port: number,
    private child: ChildProcess,
    private dir: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** An instant query; throws with Prometheus's error text when the query does not parse. */
  async query(promql: string): Promise<PromResult[]> {
    const res = await httpRequest(`${this.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = JSON.parse(res.body);
    if (body.status !== "success") throw new Error(`${promql}: ${body.errorType}: ${body.error}`);
    if (body.data.resultType === "scalar") return [{ metric: {}, value: Number(body.data.result[1]) }];
    return body.data.result.map((r: any) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  /** Waits until every target has been scraped successfully `scrapes` times (at 1 s intervals) after now. */
  async waitForScrapes(scrapes = 2): Promise<void> {
    const since = Date.now() / 1000;
    await eventually("fresh scrapes of every target", async () => {
      const res = await httpRequest(`${this.url}/api/v1/targets`);
      const targets = JSON.parse(res.body).data.activeTargets as any[];
      const fresh = targets.every((t) => t.health === "up" && Date.parse(t.lastScrape) / 1000 > since + scrapes - 1);
      return targets.length > 0 && fresh ? true : undefined;
    }, 30000);
  }

  async stop(): Promise<void> {
    await stopProcess(this.child);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startPrometheus(targets: ScrapeTarget[], scrapeInterval = "1s"): Promise<PrometheusServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "prometheus-"));
  const config = {
    global: { scrape_interval: scrapeInterval, evaluation_interval: scrapeInterval },
    scrape_configs: [
      {
        job_name: "envoy",
        metrics_path: "/stats/prometheus",
        static_configs: targets.map((t) => ({ targets: [t.address], labels: t.labels ?? {} })),
      },
    ],
  };
  writeFileSync(join(dir, "prometheus.yml"), toYaml(config));
  const child = spawn("prometheus", [
    `--config.file=${join(dir, "prometheus.yml")}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=warn",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c) => (stderr += c));
  const server = new PrometheusServer(port, child, dir);
  try {
    await eventually("Prometheus ready", async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${stderr}`);
      const res = await httpRequest(`${server.url}/-/ready`, { timeoutMs: 1000 });
      return res.status === 200 ? true : undefined;
    }, 30000);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}
