// The Envoy attributes a request's report needs at log time, read with as few host calls as
// Envoy allows. Attribute reads are the dear host calls (about 1-1.4 µs each in `make bench`'s
// price table, against 0.02-0.1 for header and metric calls). When Envoy has its CEL foreign
// functions (`expr_create` / `expr_evaluate`, built into the official binaries), one list-valued
// expression compiled at configure time returns the per-request values in one call; the probe
// prices a plain four-element list at about two reads, while `has()` guards cost as much again,
// so the list has none: when an element is missing (a stream reset before its response, a local
// reply without a cluster) Envoy refuses the whole list and that request reads them one by one.
// Values that belong to a connection rather than a request (TLS facts) are cached by the
// reporter, not read here.
import { callForeign, getProperty, log, LogLevel } from "../sdk/host";
import { ListSlots, readListResult, SlotKind } from "../expr/values";
import * as P from "./properties";

/** Slot of each attribute in LogAttributes. */
export const enum At {
  RequestBytes = 0,
  ResponseBytes,
  ResponseFlags,
  Duration,
  /** Inbound: Envoy's response code (outbound takes :status from the response headers). */
  ResponseCode,
  /** Inbound: the downstream connection, the key of its cached TLS facts. */
  ConnectionId,
  /** Inbound: the cluster (outbound reads it with the request headers). */
  Cluster,
}
const INBOUND_COUNT = 7;

const OUTBOUND_EXPR = "[request.total_size, response.total_size, response.flags, request.duration]";
const INBOUND_EXPR = "[request.total_size, response.total_size, response.flags, request.duration, response.code, connection.id, xds.cluster_name]";

const EXPR_CREATE = String.UTF8.encode("expr_create");
const EXPR_EVALUATE = String.UTF8.encode("expr_evaluate");

// Paths of the one-by-one reads, in slot order.
const OUTBOUND_PATHS: StaticArray<ArrayBuffer> = [P.REQUEST_TOTAL_SIZE, P.RESPONSE_TOTAL_SIZE, P.RESPONSE_FLAGS, P.REQUEST_DURATION];
const INBOUND_PATHS: StaticArray<ArrayBuffer> = [
  P.REQUEST_TOTAL_SIZE, P.RESPONSE_TOTAL_SIZE, P.RESPONSE_FLAGS, P.REQUEST_DURATION, P.RESPONSE_CODE, P.CONNECTION_ID, P.CLUSTER_NAME,
];

/** What a request's report reads from Envoy when it is logged. */
export class LogAttributes {
  slots: ListSlots = new ListSlots(INBOUND_COUNT);
  // Keep the host buffers the slots point into alive until release(): the one list result, or
  // one buffer per attribute read one by one.
  private result: ArrayBuffer | null = null;
  private each: ArrayBuffer[] = [];

  requestBytes(): i64 {
    return this.slots.integer(At.RequestBytes, 0);
  }

  responseBytes(): i64 {
    return this.slots.integer(At.ResponseBytes, 0);
  }

  flags(): u64 {
    return <u64>this.slots.integer(At.ResponseFlags, 0);
  }

  /** Nanoseconds from the first request byte to the last response byte; 0 when unknown. */
  durationNs(): i64 {
    const ns = this.slots.durationNs(At.Duration);
    return ns < 0 ? 0 : ns;
  }

  /** Envoy's response code (inbound reads); 0 when the stream got none. */
  code(): i32 {
    return <i32>this.slots.integer(At.ResponseCode, 0);
  }

  connectionId(): i64 {
    return this.slots.integer(At.ConnectionId, -1);
  }

  holdResult(buffer: ArrayBuffer): void {
    this.result = buffer;
  }

  hold(buffer: ArrayBuffer): void {
    this.each.push(buffer);
  }

  release(): void {
    this.result = null;
    if (this.each.length > 0) this.each = [];
  }
}

/**
 * Reads LogAttributes for one role; created per configuration. Compiling the expression may
 * fail (an Envoy without CEL in Wasm); then every read takes the one-by-one path.
 */
export class AttributeReader {
  private token: ArrayBuffer | null = null;
  private readonly paths: StaticArray<ArrayBuffer>;

  constructor(inbound: bool) {
    this.paths = inbound ? INBOUND_PATHS : OUTBOUND_PATHS;
    const text = String.UTF8.encode(inbound ? INBOUND_EXPR : OUTBOUND_EXPR);
    const token = callForeign(EXPR_CREATE, changetype<usize>(text), text.byteLength);
    if (token !== null && token.byteLength == 4) {
      this.token = token;
    } else {
      log(LogLevel.Info, "Envoy has no expr_create: log attributes are read one by one");
    }
  }

  read(out: LogAttributes): void {
    out.release();
    const token = this.token;
    if (token !== null) {
      const result = callForeign(EXPR_EVALUATE, changetype<usize>(token), 4);
      if (result !== null && readListResult(changetype<usize>(result), result.byteLength, out.slots) && out.slots.count == this.paths.length) {
        out.holdResult(result);
        return;
      }
    }
    this.readEach(out);
  }

  // One get_property per attribute, in the same native serialization as the list's elements
  // (integers and durations 8 bytes little-endian, strings raw).
  private readEach(out: LogAttributes): void {
    const s = out.slots;
    const paths = this.paths;
    s.count = paths.length;
    for (let i = 0; i < paths.length; i++) {
      const value = getProperty(paths[i]);
      if (value === null) {
        s.kinds[i] = <u8>SlotKind.Missing;
        continue;
      }
      s.setRaw(i, changetype<usize>(value), value.byteLength);
      out.hold(value);
    }
  }
}
