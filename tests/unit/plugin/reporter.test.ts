// The span reporter (assembly/plugin/reporter.ts): a sampled request's span is queued when the
// request is logged and sent to the Zipkin cluster with proxy_http_call on the root's timer
// (or when a batch fills); the collector's answer counts the spans reported or dropped.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { clientRequest, clientSidecar, serverSidecar, throughPair, tracingAt } from "../../harness/sidecar-vms.ts";

describe("span reporter", () => {
  test("a sampled request's span is queued at log and flushed on the tick, as a Zipkin POST", () => {
    const client = clientSidecar({ config: tracingAt(100) });
    const s = client.http();
    s.requestHeaders(clientRequest());
    s.responseHeaders([[":status", "200"]]);
    s.log();
    s.delete();
    assert.equal(client.httpCalls.length, 0, "nothing sent per request");
    assert.equal(client.tickPeriodMs, 1000, "the timer runs at flush_interval's default");

    client.tick();
    assert.equal(client.httpCalls.length, 1);
    const call = client.httpCalls[0];
    assert.equal(call.upstream, "zipkin");
    assert.equal(call.context, client.rootContext, "the call belongs to the root, not to a stream");
    const headers = Object.fromEntries(call.headers);
    assert.equal(headers[":method"], "POST");
    assert.equal(headers[":path"], "/api/v2/spans");
    assert.equal(headers["content-type"], "application/json");
    const spans = JSON.parse(call.body);
    assert.equal(spans.length, 1);
    const [traceId, spanId] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(s.header("traceparent")!)!.slice(1);
    assert.equal(spans[0].traceId, traceId);
    assert.equal(spans[0].id, spanId);
    assert.equal(spans[0].kind, "CLIENT");
    assert.equal(spans[0].name, "reviews:9080/reviews/1");
    assert.equal(spans[0].localEndpoint.serviceName, "productpage.default");
    assert.equal(spans[0].tags["http.status_code"], "200");
    assert.equal(spans[0].tags["guid:x-request-id"], clientRequest()[6][1]);
    assert.equal(spans[0].duration, 1250, "request.duration in microseconds");

    client.tick();
    assert.equal(client.httpCalls.length, 1, "an empty buffer sends nothing");
    client.respondToHttpCall(call.id, [[":status", "202"]]);
    assert.equal(client.metricValue("mesh_telemetry_spans_reported_total"), 1n);
  });

  test("both sidecars report their span of one trace: CLIENT parent of SERVER", () => {
    const client = clientSidecar({ config: tracingAt(100) });
    const server = serverSidecar({ config: { disable_host_header_fallback: true, ...tracingAt(100) } });
    throughPair(client, server);
    client.tick();
    server.tick();
    const [c] = JSON.parse(client.httpCalls[0].body);
    const [s] = JSON.parse(server.httpCalls[0].body);
    assert.equal(s.traceId, c.traceId);
    assert.equal(s.parentId, c.id);
    assert.equal(s.kind, "SERVER");
  });

  test("an unsampled request queues nothing", () => {
    const client = clientSidecar({ config: tracingAt(0) });
    client.request({ headers: clientRequest() });
    client.tick();
    assert.equal(client.httpCalls.length, 0);
  });

  test("a full batch is sent at once; a failed call counts its spans as dropped", () => {
    const client = clientSidecar({ config: { tracing: { random_sampling_percentage: 100, zipkin: { cluster: "zipkin" }, max_batch_spans: 3 } } });
    for (let i = 0; i < 3; i++) client.request({ headers: clientRequest() });
    assert.equal(client.httpCalls.length, 1, "sent when the third span filled the batch");
    assert.equal(JSON.parse(client.httpCalls[0].body).length, 3);
    client.respondToHttpCall(client.httpCalls[0].id, []); // no headers: the call failed
    assert.equal(client.metricValue("mesh_telemetry_spans_dropped_total"), 3n);
    assert.equal(client.metricValue("mesh_telemetry_spans_reported_total"), 0n);
  });

  test("a slow collector: at most 4 calls in flight, then the buffer fills and new spans are dropped", () => {
    const client = clientSidecar({ config: { tracing: { random_sampling_percentage: 100, zipkin: { cluster: "zipkin" }, max_batch_spans: 2, max_buffered_spans: 2 } } });
    for (let i = 0; i < 12; i++) client.request({ headers: clientRequest() });
    assert.equal(client.httpCalls.length, 4, "four batches in flight, none answered");
    assert.equal(client.metricValue("mesh_telemetry_spans_dropped_total"), 2n, "spans 11 and 12: the buffer held 9 and 10");
    client.respondToHttpCall(client.httpCalls[0].id, [[":status", "200"]]);
    client.tick();
    assert.equal(client.httpCalls.length, 5, "the buffered batch goes once a call completes");
    assert.equal(JSON.parse(client.httpCalls[4].body).length, 2);
    assert.equal(client.metricValue("mesh_telemetry_spans_reported_total"), 2n);
  });
});
