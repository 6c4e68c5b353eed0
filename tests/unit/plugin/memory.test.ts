// The VM heap under the collection policy of assembly/sdk/memory.ts, driven by count on the
// test host (no clock, no Envoy), so the verdict is the same on every run: linear memory after
// the first few hundred streams or ticks equals linear memory after ten times as many. The
// timer's garbage is collected too: before ticks counted as safe points, a VM whose streams
// rarely end never collected and doubled its memory again and again, one tick at a time
// (2 long-lived connections: 128 KiB -> 512 KiB in 1353 ticks; 200: 512 KiB -> 2 MiB in 882
// ticks; no streams at all, an idle sidecar: 128 KiB -> 1 MiB in 5200 ticks).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { clientSidecar } from "../../harness/sidecar-vms.ts";

const TCP = { tcp_reporting_duration: "1s" };
const labels = { reporter: "source", request_protocol: "tcp" };

describe("memory", () => {
  test("long-lived connections and only ticks: memory flat, byte counts exact across collections", () => {
    for (const open of [2, 200]) {
      const vm = clientSidecar({ config: TCP, recordCalls: false });
      const connections = Array.from({ length: open }, () => {
        const c = vm.connection();
        c.newConnection();
        return c;
      });
      let early = 0;
      const ticks = 2000;
      for (let t = 1; t <= ticks; t++) {
        for (const c of connections) {
          c.downstreamData(10);
          c.upstreamData(20);
        }
        vm.tick();
        if (t === 200) early = vm.memoryBytes;
      }
      assert.equal(vm.memoryBytes, early, `${open} open connections: ${early} bytes after 200 ticks, ${vm.memoryBytes} after ${ticks}`);
      for (const c of connections) c.close();
      assert.equal(vm.metricValue("istio_tcp_received_bytes_total", labels), BigInt(open * ticks * 10));
      assert.equal(vm.metricValue("istio_tcp_sent_bytes_total", labels), BigInt(open * ticks * 20));
      assert.equal(vm.metricValue("istio_tcp_connections_closed_total", labels), BigInt(open));
    }
  });

  test("an idle VM (no streams, only ticks): memory flat", () => {
    const vm = clientSidecar({ config: TCP, recordCalls: false });
    for (let t = 0; t < 200; t++) vm.tick();
    const early = vm.memoryBytes;
    for (let t = 0; t < 5000; t++) vm.tick();
    assert.equal(vm.memoryBytes, early);
  });

  test("the soak's TCP shape (short connections, a tick every 40): memory flat", () => {
    const vm = clientSidecar({ config: TCP, recordCalls: false });
    let early = 0;
    const total = 10000;
    for (let i = 1; i <= total; i++) {
      const c = vm.connection();
      c.newConnection();
      c.downstreamData(100);
      if (i % 40 === 0) vm.tick();
      c.upstreamData(200);
      c.close();
      if (i === 1000) early = vm.memoryBytes;
    }
    assert.equal(vm.memoryBytes, early, `${early} bytes after 1000 connections, ${vm.memoryBytes} after ${total}`);
    assert.equal(vm.metricValue("istio_tcp_connections_closed_total", labels), BigInt(total));
    assert.equal(vm.metricValue("istio_tcp_received_bytes_total", labels), BigInt(total * 100));
  });
});
