// Envoy attribute knowledge the expression compiler needs and the host cannot tell it: which
// top-level roots exist, how each well-known attribute's bytes are encoded, and how a path is
// encoded for proxy_get_property. Pure code: no host imports, so unit specs can load it.
//
// Envoy serializes a property value by its CEL type: string and bytes raw; int64 and uint64 as 8
// little-endian bytes; bool as 1 byte; double as 8 bytes; duration and timestamp as int64
// nanoseconds; maps and messages as their serialized form. Nothing in the bytes says which, so
// the compiler decides from this table, by the attribute's full path:
//
//   path                                   encoding    value
//   request.size, request.total_size       Int         int
//   request.duration                       Duration    int (nanoseconds)
//   request.time                           Timestamp   int (nanoseconds since the Unix epoch)
//   response.code, response.flags,         Int         int (flags is Envoy's bit mask)
//   response.grpc_status, response.size,
//   response.total_size
//   response.backend_latency               Duration    int (nanoseconds)
//   source.port, destination.port,         Int         int
//   upstream.port
//   upstream.request_attempt_count,        Int         int (uint64 read as i64)
//   connection.id
//   upstream.cx_pool_ready_duration        Duration    int (nanoseconds)
//   xds.listener_direction                 Int         int (TrafficDirection enum: 0, 1 INBOUND, 2 OUTBOUND)
//   connection.mtls                        Bool        bool
//   anything else                          String      string (raw bytes)
//
// "Anything else" covers request.host/method/path/url_path/scheme/protocol/id/useragent/referer/
// query, request/response headers and trailers, response.code_details, addresses, SNI,
// certificates, xds names, metadata and filter_state. An attribute whose value is a map, a
// message or a double (a number inside Struct metadata) therefore reads as its raw bytes.
// An Int attribute whose value is not exactly 8 bytes, or a Bool one not exactly 1 byte, is
// treated as missing rather than misread.
import { joinStrings } from "../text/join";

/** How the bytes of a property value are decoded. */
export const enum Encoding {
  String = 0,
  Int = 1,
  Bool = 2,
  /** int64 nanoseconds; evaluates as an int. */
  Duration = 3,
  /** int64 nanoseconds since the Unix epoch; evaluates as an int. */
  Timestamp = 4,
}

/** Envoy's top-level attribute roots that become property paths (`node` is handled apart). */
const ROOTS: string[] = [
  "request", "response", "connection", "upstream", "source", "destination", "metadata",
  "filter_state", "xds", "plugin_name", "plugin_root_id", "plugin_vm_id",
];

export function isAttributeRoot(name: string): bool {
  for (let i = 0; i < ROOTS.length; i++) {
    if (unchecked(ROOTS[i]) == name) return true;
  }
  return false;
}

/** The encoding of an attribute given its path segments (see the table above). */
export function attributeEncoding(segments: string[]): Encoding {
  if (segments.length != 2) return Encoding.String;
  const root = unchecked(segments[0]);
  const name = unchecked(segments[1]);
  if (root == "request") {
    if (name == "size" || name == "total_size") return Encoding.Int;
    if (name == "duration") return Encoding.Duration;
    if (name == "time") return Encoding.Timestamp;
  } else if (root == "response") {
    if (name == "code" || name == "flags" || name == "grpc_status" || name == "size" || name == "total_size") {
      return Encoding.Int;
    }
    if (name == "backend_latency") return Encoding.Duration;
  } else if (root == "source" || root == "destination") {
    if (name == "port") return Encoding.Int;
  } else if (root == "upstream") {
    if (name == "port" || name == "request_attempt_count") return Encoding.Int;
    if (name == "cx_pool_ready_duration") return Encoding.Duration;
  } else if (root == "connection") {
    if (name == "mtls") return Encoding.Bool;
    if (name == "id") return Encoding.Int;
  } else if (root == "xds") {
    if (name == "listener_direction") return Encoding.Int;
  }
  return Encoding.String;
}

/**
 * Encodes a property path the way proxy_get_property expects it: UTF-8 segments joined by NUL.
 * (The same encoding as `propertyPath` in sdk/host.ts, kept local so this module has no host
 * imports.)
 */
export function encodePropertyPath(segments: string[]): ArrayBuffer {
  return String.UTF8.encode(joinStrings(segments, "\0"));
}
