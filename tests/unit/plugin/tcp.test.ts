// TCP telemetry (assembly/plugin/tcp.ts) through the network-filter callbacks: bytes counted
// per direction, reported as deltas on the root's timer once the upstream is known, and the
// rest with the close at log.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { serverSidecar } from "../../harness/sidecar-vms.ts";

describe("tcp", () => {
  const labels = { reporter: "destination", request_protocol: "tcp", destination_workload: "reviews-v1" };

  test("open, bytes on each tick, the rest and the close at log; nothing under wrong labels", () => {
    const server = serverSidecar({ config: { tcp_reporting_duration: "1s" } });
    assert.equal(server.tickPeriodMs, 1000);
    // No upstream yet (tcp_proxy has not picked a host): the first tick waits.
    const c = server.connection({ upstream: { address: null } });
    c.newConnection();
    c.downstreamData(100);
    server.tick();
    assert.equal(server.metricsNamed("istio_tcp_connections_opened_total").length, 0, "identity not settled: no report");

    c.set("upstream.address", "10.0.0.2:9080");
    c.upstreamData(40);
    server.tick();
    assert.equal(server.metricValue("istio_tcp_connections_opened_total", labels), 1n);
    assert.equal(server.metricValue("istio_tcp_received_bytes_total", labels), 100n);
    assert.equal(server.metricValue("istio_tcp_sent_bytes_total", labels), 40n);

    c.downstreamData(5);
    c.close();
    assert.equal(server.metricValue("istio_tcp_received_bytes_total", labels), 105n);
    assert.equal(server.metricValue("istio_tcp_connections_closed_total", labels), 1n);
    server.tick();
    assert.equal(server.metricValue("istio_tcp_received_bytes_total", labels), 105n, "a closed connection reports no more");
  });

  test("a connection closed before any tick is still reported whole", () => {
    const server = serverSidecar({});
    const c = server.connection();
    c.newConnection();
    c.downstreamData(7);
    c.upstreamData(9);
    c.close();
    assert.equal(server.metricValue("istio_tcp_connections_opened_total", labels), 1n);
    assert.equal(server.metricValue("istio_tcp_connections_closed_total", labels), 1n);
    assert.equal(server.metricValue("istio_tcp_received_bytes_total", labels), 7n);
    assert.equal(server.metricValue("istio_tcp_sent_bytes_total", labels), 9n);
  });

  test("the timer's property reads act on the connection (set_effective_context), then the root's again", () => {
    const server = serverSidecar({});
    const c = server.connection();
    c.newConnection();
    c.downstreamData(1);
    server.calls.clear();
    server.tick(); // tcp_reporting_duration's default 5 s is the tick period
    const reads = server.calls.calls.filter((x) => x.fn === "get_property");
    assert.ok(reads.length > 0);
    assert.deepEqual([...new Set(reads.map((x) => x.context))], [c.id], "every read on the connection");
    const switches = server.calls.calls.filter((x) => x.fn === "set_effective_context").map((x) => x.key);
    assert.deepEqual(switches, [String(c.id), String(server.rootContext)], "to the connection, then back to the root");
    assert.equal(server.metricValue("istio_tcp_received_bytes_total", labels), 1n);
  });
});
