// The project's extension of @solo-io/proxy-runtime: host calls the SDK lacks or wraps badly.
// Every function here reports failure through its return value and never throws, because a
// throw is a trap and a trap fails every stream on the worker. Plugin logic reaches the host
// only through the SDK and this module.
import * as imports from "@solo-io/proxy-runtime/assembly/imports";
import { joinStrings } from "../text/join";

export const enum Status {
  Ok = 0,
  NotFound = 1,
  BadArgument = 2,
}

export const enum MapType {
  RequestHeaders = 0,
  RequestTrailers = 1,
  ResponseHeaders = 2,
  ResponseTrailers = 3,
  HttpCallResponseHeaders = 6,
}

export const enum BufferType {
  DownstreamData = 2,
  UpstreamData = 3,
  HttpCallResponseBody = 4,
  VmConfiguration = 6,
  PluginConfiguration = 7,
}

export const enum MetricType {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}

export const enum LogLevel {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
  Critical = 5,
}

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "random_get")
declare function wasi_random_get(buf: usize, len: usize): u16;

// Out-parameters of host calls live in a fixed scratch area: no allocation per call.
const OUT = memory.data(16);

// Takes ownership of a buffer the host allocated through malloc (pinned there).
function takeHostBuffer(): ArrayBuffer {
  const ptr = load<usize>(OUT);
  const size = load<usize>(OUT, 4);
  store<usize>(OUT, 0);
  store<usize>(OUT, 0, 4);
  if (ptr == 0) return new ArrayBuffer(0);
  __unpin(ptr);
  if (size == 0) return new ArrayBuffer(0);
  return changetype<ArrayBuffer>(ptr);
}

/** Encodes a property path such as ["xds", "node", "metadata"] the way Envoy splits it (NUL). */
export function propertyPath(parts: string[]): ArrayBuffer {
  return String.UTF8.encode(joinStrings(parts, "\0"));
}

/** Reads an Envoy attribute; null when the host has no value (NOT_FOUND) or refuses. */
export function getProperty(path: ArrayBuffer): ArrayBuffer | null {
  store<usize>(OUT, 0);
  store<usize>(OUT, 0, 4);
  const status = imports.proxy_get_property(changetype<usize>(path), path.byteLength, OUT, OUT + 4);
  const value = takeHostBuffer();
  return status == Status.Ok ? value : null;
}

/** An Envoy integer attribute (8 bytes, little-endian), or `fallback` when absent or malformed. */
export function getPropertyI64(path: ArrayBuffer, fallback: i64): i64 {
  const value = getProperty(path);
  if (value === null || value.byteLength != 8) return fallback;
  return load<i64>(changetype<usize>(value));
}

export function getPropertyString(path: ArrayBuffer): string | null {
  const value = getProperty(path);
  return value === null ? null : String.UTF8.decode(value);
}

export function getHeader(map: MapType, key: ArrayBuffer): ArrayBuffer | null {
  store<usize>(OUT, 0);
  store<usize>(OUT, 0, 4);
  const status = imports.proxy_get_header_map_value(map, changetype<usize>(key), key.byteLength, OUT, OUT + 4);
  const value = takeHostBuffer();
  return status == Status.Ok ? value : null;
}

export function replaceHeader(map: MapType, key: ArrayBuffer, value: ArrayBuffer): u32 {
  return imports.proxy_replace_header_map_value(map, changetype<usize>(key), key.byteLength, changetype<usize>(value), value.byteLength);
}

/** Sets a header to the `length` bytes at `value` (a scratch buffer: no allocation). */
export function replaceHeaderBytes(map: MapType, key: ArrayBuffer, value: usize, length: usize): u32 {
  return imports.proxy_replace_header_map_value(map, changetype<usize>(key), key.byteLength, value, length);
}

/**
 * Calls one of Envoy's foreign functions (e.g. `expr_evaluate`) with `length` bytes at
 * `argument`; the result, or null when the host refuses or does not have the function.
 */
export function callForeign(name: ArrayBuffer, argument: usize, length: usize): ArrayBuffer | null {
  store<usize>(OUT, 0);
  store<usize>(OUT, 0, 4);
  const status = imports.proxy_call_foreign_function(changetype<usize>(name), name.byteLength, argument, length, OUT, OUT + 4);
  const value = takeHostBuffer();
  return status == Status.Ok ? value : null;
}

export function removeHeader(map: MapType, key: ArrayBuffer): u32 {
  return imports.proxy_remove_header_map_value(map, changetype<usize>(key), key.byteLength);
}

export function getBufferBytes(buffer: BufferType, start: u32, length: u32): ArrayBuffer {
  store<usize>(OUT, 0);
  store<usize>(OUT, 0, 4);
  const status = imports.proxy_get_buffer_bytes(buffer, start, length, OUT, OUT + 4);
  const value = takeHostBuffer();
  return status == Status.Ok ? value : new ArrayBuffer(0);
}

/** Defines a metric; returns its id, or -1 when the host refuses the name. */
export function defineMetric(type: MetricType, name: string): i64 {
  const encoded = String.UTF8.encode(name);
  const status = imports.proxy_define_metric(type, changetype<usize>(encoded), encoded.byteLength, OUT);
  return status == Status.Ok ? <i64>load<u32>(OUT) : -1;
}

export function incrementMetric(id: u32, delta: i64): u32 {
  return imports.proxy_increment_metric(id, delta);
}

export function recordMetric(id: u32, value: u64): u32 {
  return imports.proxy_record_metric(id, value);
}

export function log(level: LogLevel, message: string): void {
  const encoded = String.UTF8.encode(message);
  imports.proxy_log(level, changetype<usize>(encoded), encoded.byteLength);
}

/** Fills `out` with random bytes from the host (WASI random_get). */
export function randomBytes(out: ArrayBuffer): void {
  wasi_random_get(changetype<usize>(out), out.byteLength);
}

export function setTickPeriodMs(ms: u32): u32 {
  return imports.proxy_set_tick_period_milliseconds(ms);
}

/** Makes later host calls act on another context's stream (e.g. a connection, from a timer). */
export function setEffectiveContext(contextId: u32): u32 {
  return imports.proxy_set_effective_context(contextId);
}

/** All pairs of a header map in the ABI's serialized form (one host call), or an empty buffer. */
export function getHeaderPairs(map: MapType): ArrayBuffer {
  store<usize>(OUT, 0);
  store<usize>(OUT, 0, 4);
  const status = imports.proxy_get_header_map_pairs(map, OUT, OUT + 4);
  const value = takeHostBuffer();
  return status == Status.Ok ? value : new ArrayBuffer(0);
}

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "environ_sizes_get")
declare function wasi_environ_sizes_get(count: usize, size: usize): u16;

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "environ_get")
declare function wasi_environ_get(environ: usize, buffer: usize): u16;

/**
 * The VM's environment (Envoy's vm_config.environment_variables; Istio's vmConfig.env) as
 * "KEY=value" strings, read through WASI.
 */
export function environment(): string[] {
  const out: string[] = [];
  if (wasi_environ_sizes_get(OUT, OUT + 4) != 0) return out;
  const count = load<u32>(OUT);
  const size = load<u32>(OUT, 4);
  if (count == 0 || size == 0 || count > 4096 || size > 1 << 20) return out;
  const pointers = new ArrayBuffer(count * 4);
  const buffer = new ArrayBuffer(size);
  if (wasi_environ_get(changetype<usize>(pointers), changetype<usize>(buffer)) != 0) return out;
  const base = changetype<usize>(buffer);
  for (let i: u32 = 0; i < count; i++) {
    const start = load<usize>(changetype<usize>(pointers) + i * 4);
    if (start < base || start >= base + size) continue;
    let end = start;
    while (end < base + size && load<u8>(end) != 0) end++;
    out.push(String.UTF8.decodeUnsafe(start, end - start));
  }
  return out;
}
