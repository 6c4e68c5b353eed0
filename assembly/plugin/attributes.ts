// The Envoy attributes a request's report needs at log time, read with as few host calls as
// Envoy allows. Attribute reads are the dear host calls (about 1 µs each in `make bench`'s
// price table, against 0.02-0.1 for header and metric calls), and a report needs seven to nine
// of them. When Envoy has its CEL foreign functions (`expr_create` / `expr_evaluate`, built in
// the official binaries), one list-valued expression compiled at configure time returns all of
// them in one call; otherwise they are read one by one. Either way the values land in the same
// slots (LogAttributes), so nothing downstream knows which path ran.
import { callForeign, getProperty, log, LogLevel } from "../sdk/host";
import { ListSlots, readListResult, SlotKind } from "../expr/values";
import * as P from "./properties";

/** Slot of each attribute in LogAttributes. */
export const enum At {
  ResponseCode = 0,
  ResponseFlags,
  RequestBytes,
  ResponseBytes,
  Duration,
  /** The peer's URI SAN: upstream's (outbound) or the downstream connection's (inbound). */
  PeerPrincipal,
  /** This proxy's own URI SAN on that connection. */
  LocalPrincipal,
  /** Inbound only: the downstream connection is mutual TLS. */
  Mtls,
  /** Inbound only (outbound reads it with the request headers). */
  Cluster,
}
const OUTBOUND_COUNT = 7;
const INBOUND_COUNT = 9;

// The same attributes as one CEL list. `has()` keeps an absent attribute (no response yet, no
// TLS) from failing the whole list.
const COMMON =
  "has(response.code) ? response.code : 0, has(response.flags) ? response.flags : 0, " +
  "has(request.total_size) ? request.total_size : 0, has(response.total_size) ? response.total_size : 0, " +
  "has(request.duration) ? request.duration : ''";
const OUTBOUND_EXPR =
  "[" + COMMON + ", has(upstream.uri_san_peer_certificate) ? upstream.uri_san_peer_certificate : '', " +
  "has(upstream.uri_san_local_certificate) ? upstream.uri_san_local_certificate : '']";
const INBOUND_EXPR =
  "[" + COMMON + ", has(connection.uri_san_peer_certificate) ? connection.uri_san_peer_certificate : '', " +
  "has(connection.uri_san_local_certificate) ? connection.uri_san_local_certificate : '', " +
  "has(connection.mtls) ? connection.mtls : false, has(xds.cluster_name) ? xds.cluster_name : '']";

const EXPR_CREATE = String.UTF8.encode("expr_create");
const EXPR_EVALUATE = String.UTF8.encode("expr_evaluate");

// Paths of the one-by-one fallback, in slot order.
const OUTBOUND_PATHS: StaticArray<ArrayBuffer> = [
  P.RESPONSE_CODE, P.RESPONSE_FLAGS, P.REQUEST_TOTAL_SIZE, P.RESPONSE_TOTAL_SIZE, P.REQUEST_DURATION,
  P.UPSTREAM_PEER_SAN, P.UPSTREAM_LOCAL_SAN,
];
const INBOUND_PATHS: StaticArray<ArrayBuffer> = [
  P.RESPONSE_CODE, P.RESPONSE_FLAGS, P.REQUEST_TOTAL_SIZE, P.RESPONSE_TOTAL_SIZE, P.REQUEST_DURATION,
  P.CONNECTION_PEER_SAN, P.CONNECTION_LOCAL_SAN, P.CONNECTION_MTLS, P.CLUSTER_NAME,
];

/** What a request's report reads from Envoy when it is logged. */
export class LogAttributes {
  slots: ListSlots = new ListSlots(INBOUND_COUNT);
  // Keep the host buffers the slots point into alive until release(): the one list result, or
  // one buffer per attribute read one by one.
  private result: ArrayBuffer | null = null;
  private each: ArrayBuffer[] = [];

  /** Envoy's response code; 0 when the stream got none. */
  code(): i32 {
    return <i32>this.slots.integer(At.ResponseCode, 0);
  }

  flags(): u64 {
    return <u64>this.slots.integer(At.ResponseFlags, 0);
  }

  requestBytes(): i64 {
    return this.slots.integer(At.RequestBytes, 0);
  }

  responseBytes(): i64 {
    return this.slots.integer(At.ResponseBytes, 0);
  }

  /** Nanoseconds from the first request byte to the last response byte; 0 when unknown. */
  durationNs(): i64 {
    const ns = this.slots.durationNs(At.Duration);
    return ns < 0 ? 0 : ns;
  }

  mtls(): bool {
    return this.slots.isTrue(At.Mtls);
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

  constructor(readonly inbound: bool) {
    this.paths = inbound ? INBOUND_PATHS : OUTBOUND_PATHS;
    const text = String.UTF8.encode(inbound ? INBOUND_EXPR : OUTBOUND_EXPR);
    const token = callForeign(EXPR_CREATE, changetype<usize>(text), text.byteLength);
    if (token !== null && token.byteLength == 4) {
      this.token = token;
    } else {
      log(LogLevel.Info, "Envoy has no expr_create: log attributes are read one by one");
    }
  }

  get batched(): bool {
    return this.token !== null;
  }

  read(out: LogAttributes): void {
    out.release();
    const token = this.token;
    if (token !== null) {
      const result = callForeign(EXPR_EVALUATE, changetype<usize>(token), 4);
      if (result !== null && readListResult(changetype<usize>(result), result.byteLength, out.slots)) {
        out.holdResult(result);
        return;
      }
    }
    this.readEach(out);
  }

  // One get_property per attribute, in the same native serialization as the list's elements
  // (integers and durations 8 bytes little-endian, booleans one byte, strings raw).
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
