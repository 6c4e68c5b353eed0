// The empty filter plus a configurable number of host calls per request, so the benchmark can
// price one host call of each kind in this Envoy: CPU per request with N calls, minus CPU per
// request with none, divided by N. Same SDK and build options as the plugin. The configuration
// is one line, `<kind> <count> [argument]`:
//
//   none 0                     nothing (the empty filter)
//   clock N                    proxy_get_current_time_nanoseconds: the bare cost of a crossing
//   property N a.b.c           proxy_get_property of the dotted path, e.g. response.code
//   header N name              proxy_get_header_map_value of a request header
//   increment N                proxy_increment_metric on a counter
//   record N                   proxy_record_metric on a histogram
//   expr N <CEL expression>    Envoy's expr_evaluate foreign function on an expression made
//                              once by expr_create at configure time (refused if Envoy lacks it)
//
// Calls happen in onLog (onRequestHeaders for `header`), where the plugin makes most of its own.
// Built by bench/run.ts into build/bench/probe.wasm; never part of a release.
import { Context, FilterHeadersStatusValues, registerRootContext, RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import * as imports from "@solo-io/proxy-runtime/assembly/imports";

export * from "@solo-io/proxy-runtime/assembly/proxy";

const OUT = memory.data(16);
const STREAMS_PER_COLLECTION: u32 = 128;
let streamsSinceCollection: u32 = 0;

const enum Kind {
  None,
  Clock,
  Property,
  Header,
  Increment,
  Record,
  Expr,
}

class Probe {
  kind: Kind = Kind.None;
  count: i32 = 0;
  key: ArrayBuffer = new ArrayBuffer(0);
  counter: u32 = 0;
  histogram: u32 = 0;
  /** expr_create's token, as the 4-byte argument expr_evaluate takes. */
  token: ArrayBuffer = new ArrayBuffer(4);
}

const EXPR_CREATE = String.UTF8.encode("expr_create");
const EXPR_EVALUATE = String.UTF8.encode("expr_evaluate");

function foreign(name: ArrayBuffer, argument: ArrayBuffer): i32 {
  return <i32>imports.proxy_call_foreign_function(changetype<usize>(name), name.byteLength, changetype<usize>(argument), argument.byteLength, OUT, OUT + 4);
}

function release(): void {
  // The host allocated the value through the SDK's malloc, which pins it; unpin it so the
  // collector can free it, as assembly/sdk/host.ts does.
  const ptr = load<usize>(OUT);
  if (ptr != 0) __unpin(ptr);
  store<usize>(OUT, 0);
  store<usize>(OUT, 0, 4);
}

function call(p: Probe): void {
  for (let i = 0; i < p.count; i++) {
    if (p.kind == Kind.Clock) {
      imports.proxy_get_current_time_nanoseconds(OUT);
    } else if (p.kind == Kind.Property) {
      imports.proxy_get_property(changetype<usize>(p.key), p.key.byteLength, OUT, OUT + 4);
      release();
    } else if (p.kind == Kind.Header) {
      imports.proxy_get_header_map_value(0, changetype<usize>(p.key), p.key.byteLength, OUT, OUT + 4);
      release();
    } else if (p.kind == Kind.Increment) {
      imports.proxy_increment_metric(p.counter, 1);
    } else if (p.kind == Kind.Record) {
      imports.proxy_record_metric(p.histogram, 1234);
    } else if (p.kind == Kind.Expr) {
      foreign(EXPR_EVALUATE, p.token);
      release();
    }
  }
}

class ProbeStream extends Context {
  constructor(
    context_id: u32,
    root: RootContext,
    readonly probe: Probe,
  ) {
    super(context_id, root);
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    if (this.probe.kind == Kind.Header) call(this.probe);
    return FilterHeadersStatusValues.Continue;
  }

  onLog(): void {
    if (this.probe.kind != Kind.Header) call(this.probe);
  }

  onDelete(): void {
    if (++streamsSinceCollection < STREAMS_PER_COLLECTION) return;
    streamsSinceCollection = 0;
    __collect();
  }
}

function defineMetric(type: i32, name: string): u32 {
  const encoded = String.UTF8.encode(name);
  imports.proxy_define_metric(type, changetype<usize>(encoded), encoded.byteLength, OUT);
  return load<u32>(OUT);
}

class ProbeRoot extends RootContext {
  probe: Probe = new Probe();

  onConfigure(configuration_size: u32): bool {
    super.onConfigure(configuration_size);
    const parts = this.getConfiguration().trim().split(" ");
    const p = new Probe();
    const kind = parts[0];
    if (kind == "clock") p.kind = Kind.Clock;
    else if (kind == "property") p.kind = Kind.Property;
    else if (kind == "header") p.kind = Kind.Header;
    else if (kind == "increment") p.kind = Kind.Increment;
    else if (kind == "record") p.kind = Kind.Record;
    else if (kind == "expr") p.kind = Kind.Expr;
    p.count = parts.length > 1 ? I32.parseInt(parts[1]) : 0;
    if (p.kind == Kind.Expr) {
      const result = foreign(EXPR_CREATE, String.UTF8.encode(parts.slice(2).join(" ")));
      if (result != 0) {
        const message = String.UTF8.encode("probe: expr_create refused the expression (result " + result.toString() + ")");
        imports.proxy_log(4, changetype<usize>(message), message.byteLength);
        return false;
      }
      store<u32>(changetype<usize>(p.token), load<u32>(load<usize>(OUT)));
      release();
    } else if (parts.length > 2) {
      p.key = String.UTF8.encode(p.kind == Kind.Property ? parts[2].replaceAll(".", "\0") : parts[2]);
    }
    p.counter = defineMetric(0, "bench_probe_total");
    p.histogram = defineMetric(2, "bench_probe_value");
    this.probe = p;
    return true;
  }

  createContext(context_id: u32): Context {
    return new ProbeStream(context_id, this, this.probe);
  }
}

registerRootContext((context_id: u32): RootContext => new ProbeRoot(context_id), "");
