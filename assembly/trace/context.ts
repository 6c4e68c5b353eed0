// Trace context, pure logic: read W3C / B3 headers into a TraceContext, decide sampling, make
// the child context we propagate, and format it back into headers. Also x-request-id handling
// and UUIDv4. No host calls here (ids come from a caller-supplied RandomSource) and nothing
// traps: malformed input is reported by value, as everywhere in the plugin.
//
// Formats
//   W3C traceparent  `vv-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lowercase only.
//                    Version 00 must be exactly 55 characters; version ff is invalid; any other
//                    version is read by the forward-compatible rule (at least 55 characters, and
//                    character 55, if any, is '-'; only the first four fields are used). All-zero
//                    trace or parent id is invalid. We always send version 00, flags 00 or 01.
//   W3C tracestate   see tracestate.ts. Read only together with a valid traceparent of the same
//                    trace; an invalid one is dropped whole (and counted), never fixed up.
//   B3 single `b3`   `{TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`, TraceId 16 or 32
//                    lowercase hex, SamplingState `0`, `1` or `d`; or the state alone (`b3: 0`
//                    denies, `1` accepts, `d` debugs, no ids).
//   B3 multi         x-b3-traceid (16 or 32 hex), x-b3-spanid (16), x-b3-parentspanid (16,
//                    optional), x-b3-sampled (`1`/`0`, also `true`/`false`), x-b3-flags (`1` =
//                    debug, which implies sampled and wins over x-b3-sampled: 0; other values are
//                    ignored, as B3 says). x-b3-sampled and/or x-b3-flags: 1 without ids is a
//                    sampling-only decision.
//   Whitespace (SP, HTAB) around a header value is ignored; an empty value counts as absent.
//   A 16-hex B3 trace id is the low half of a 128-bit id whose high half is 0 (W3C form:
//   left-padded with zeros); `traceId64` remembers it so B3 output stays 16 hex for old tracers.
//   An all-zero B3 parent span id means "no parent" (zero is never a valid id, and B3 roots
//   must not carry a parent), rather than rejecting the whole context.
//
// Duplicates: Envoy joins repeated headers with ','. A traceparent or b3 containing ',' is a
// duplicate and invalid; a comma in an x-b3-* id or x-b3-sampled fails its syntax and is invalid
// too (stricter than B3's "first value wins": two contexts in one request are not trusted).
// tracestate is a comma-separated list by definition, so joined tracestates are simply combined.
//
// Extraction precedence (extractTraceContext)
//   1. Formats are read in the configured order (default W3C, B3 single, B3 multi); a format
//      not in the list is not read at all. Each present header set is Valid (has ids),
//      SamplingOnly, or Invalid.
//   2. Invalid input (bad syntax, all-zero ids, duplicates) is treated as absent: `invalid` is
//      set and the format's bit in `invalidFormats`; it never wins and never conflicts.
//   3. The first Valid context in order wins (`context`, `format`).
//   4. Any later Valid context with a different trace id sets `conflict` (the first still wins).
//      A 64-bit B3 trace id agrees with a 128-bit one whose low half is equal (B3 allows
//      tracers to drop the high half; Zipkin joins such traces on the low 64 bits).
//   5. A sampling-only decision never wins over ids. The first one in order supplies the
//      sampling state when the winning context has none (B3 "defer"), or for the fresh trace
//      when there is no context.
//   6. tracestate is attached only when a valid traceparent was read and has the winner's trace
//      id; if it is then invalid it is dropped and `traceStateInvalid` and `invalid` are set.
//   With no winning context the plugin starts a fresh trace (startSpan does that).
//
// Sampling (decideSampling): debug → sampled; an upstream decision (Yes/No) is honoured;
// otherwise sampled when `random % 1_000_000 < round(percentage * 10_000)`, i.e. a resolution
// of 0.0001 percent. NaN or ≤ 0 never samples, ≥ 100 always does. It never looks at
// x-request-id, so non-UUID request ids cannot bias it.

import { isLowerHex, lowerHexToU64, newAsciiString, putChar, putHex, putHex16, u128ToHex, u64ToHex, writeHex } from "./hex";
import { normalizeTraceState, updateTraceState } from "./tracestate";

export { isLowerHex, lowerHexToU64, u128ToHex, u64ToHex } from "./hex";
export {
  MAX_TRACESTATE_KEY_LENGTH,
  MAX_TRACESTATE_LENGTH,
  MAX_TRACESTATE_MEMBERS,
  MAX_TRACESTATE_VALUE_LENGTH,
  TRACESTATE_LARGE_MEMBER,
  isPortableTraceStateKey,
  isValidTraceStateKey,
  isValidTraceStateValue,
  normalizeTraceState,
  parseTraceStateMembers,
  traceStateGet,
  updateTraceState,
} from "./tracestate";

/** Longest traceparent accepted (future versions may append fields; this bounds hostile input). */
export const MAX_TRACEPARENT_LENGTH: i32 = 512;
/** Longest x-request-id kept as is; longer (or empty, or non-printable) ones are replaced. */
export const MAX_REQUEST_ID_LENGTH: i32 = 256;
/** Sampling works in millionths: percentage 1.0 is 10_000 of 1_000_000 (resolution 0.0001 %). */
export const SAMPLING_SCALE: u64 = 1_000_000;
/** Istio's default random_sampling_percentage. */
export const DEFAULT_SAMPLING_PERCENTAGE: f64 = 1.0;
/** Default tracestate key for our entry. */
export const DEFAULT_TRACESTATE_KEY: string = "mtw";

export enum Sampling {
  /** No decision (B3 "defer"). */
  Unset = 0,
  Yes = 1,
  No = 2,
}

export enum TraceFormat {
  None = 0,
  W3C = 1,
  B3Single = 2,
  B3Multi = 3,
}

/** The formats read when the configuration names none, in precedence order. */
export const DEFAULT_TRACE_FORMATS: TraceFormat[] = [TraceFormat.W3C, TraceFormat.B3Single, TraceFormat.B3Multi];

/** Where ids and sampling draws come from; tests pass a seeded generator. */
export abstract class RandomSource {
  abstract next64(): u64;
}

/** SplitMix64: a small, fast, well-distributed deterministic generator (not cryptographic). */
export class SplitMix64 extends RandomSource {
  private state: u64;

  constructor(seed: u64) {
    super();
    this.state = seed;
  }

  next64(): u64 {
    this.state += 0x9e3779b97f4a7c15;
    let z = this.state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
  }
}

/**
 * A trace context. Parsed from headers it describes the caller: `spanId` is the caller's span
 * (W3C parent-id, B3 SpanId) and `parentSpanId` the caller's parent (B3 only). Made by
 * startSpan/childOf it describes our span, and `parentSpanId` is the caller's span.
 * A context without ids (hasIds() false) carries only a sampling decision.
 */
export class TraceContext {
  traceIdHigh: u64 = 0;
  traceIdLow: u64 = 0;
  spanId: u64 = 0;
  /** 0 = none. */
  parentSpanId: u64 = 0;
  sampled: Sampling = Sampling.Unset;
  debug: bool = false;
  /** Canonical tracestate (no OWS, no empty members), "" for none. */
  traceState: string = "";
  /** The trace id arrived as a 16-hex B3 id: B3 output keeps 16 hex (high half is 0). */
  traceId64: bool = false;

  hasIds(): bool {
    return (this.traceIdHigh | this.traceIdLow) != 0 && this.spanId != 0;
  }

  /** Sampled or debug. */
  isSampled(): bool {
    return this.debug || this.sampled == Sampling.Yes;
  }

  /** Same trace id; a 64-bit B3 id matches a 128-bit id with the same low half. */
  sameTrace(other: TraceContext): bool {
    if (this.traceIdLow != other.traceIdLow) return false;
    return this.traceIdHigh == other.traceIdHigh || this.traceId64 || other.traceId64;
  }

  /** The trace id as 32 lowercase hex digits (W3C form). */
  traceIdHex(): string {
    return u128ToHex(this.traceIdHigh, this.traceIdLow);
  }

  spanIdHex(): string {
    return u64ToHex(this.spanId);
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing

const enum Parsed {
  Absent,
  Ids,
  SamplingOnly,
  Invalid,
}

// @ts-ignore: decorator
@inline
function isOws(c: i32): bool {
  return c == 0x20 || c == 0x09;
}

/** `s` without leading and trailing SP/HTAB (the same string when there are none). */
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isOws(s.charCodeAt(a))) a++;
  while (b > a && isOws(s.charCodeAt(b - 1))) b--;
  return a == 0 && b == s.length ? s : s.substring(a, b);
}

/** Lowercase hex of exactly `len` digits at `start`, ending no later than `end`. */
// @ts-ignore: decorator
@inline
function hexAt(s: string, start: i32, len: i32, end: i32): bool {
  return start + len <= end && isLowerHex(s, start, len);
}

/** Reads a 16- or 32-hex trace id spanning all of `s[start, end)` into `out`; false if invalid. */
function traceIdInto(s: string, start: i32, end: i32, out: TraceContext): bool {
  const len = end - start;
  if (len == 32) {
    if (!isLowerHex(s, start, 32)) return false;
    out.traceIdHigh = lowerHexToU64(s, start, 16);
    out.traceIdLow = lowerHexToU64(s, start + 16, 16);
    out.traceId64 = false;
  } else if (len == 16) {
    if (!isLowerHex(s, start, 16)) return false;
    out.traceIdHigh = 0;
    out.traceIdLow = lowerHexToU64(s, start, 16);
    out.traceId64 = true;
  } else {
    return false;
  }
  return (out.traceIdHigh | out.traceIdLow) != 0;
}

function traceparentInto(raw: string, out: TraceContext): Parsed {
  const s = trimOws(raw);
  const n = s.length;
  if (n == 0) return Parsed.Absent;
  if (n < 55 || n > MAX_TRACEPARENT_LENGTH || s.indexOf(",") >= 0) return Parsed.Invalid;
  if (!isLowerHex(s, 0, 2) || s.charCodeAt(2) != 0x2d) return Parsed.Invalid;
  const version = lowerHexToU64(s, 0, 2);
  if (version == 0xff) return Parsed.Invalid;
  if (version == 0) {
    if (n != 55) return Parsed.Invalid;
  } else if (n > 55 && s.charCodeAt(55) != 0x2d) {
    return Parsed.Invalid;
  }
  if (!isLowerHex(s, 3, 32) || s.charCodeAt(35) != 0x2d) return Parsed.Invalid;
  if (!isLowerHex(s, 36, 16) || s.charCodeAt(52) != 0x2d) return Parsed.Invalid;
  if (!isLowerHex(s, 53, 2)) return Parsed.Invalid;
  const high = lowerHexToU64(s, 3, 16);
  const low = lowerHexToU64(s, 19, 16);
  const span = lowerHexToU64(s, 36, 16);
  if ((high | low) == 0 || span == 0) return Parsed.Invalid;
  out.traceIdHigh = high;
  out.traceIdLow = low;
  out.traceId64 = false;
  out.spanId = span;
  out.parentSpanId = 0;
  out.sampled = (lowerHexToU64(s, 53, 2) & 1) != 0 ? Sampling.Yes : Sampling.No;
  out.debug = false;
  return Parsed.Ids;
}

/** Applies a B3 single-header sampling state character; false if it is not 0, 1 or d. */
function b3StateInto(c: i32, out: TraceContext): bool {
  if (c == 0x30 /* 0 */) {
    out.sampled = Sampling.No;
  } else if (c == 0x31 /* 1 */) {
    out.sampled = Sampling.Yes;
  } else if (c == 0x64 /* d */) {
    out.sampled = Sampling.Yes;
    out.debug = true;
  } else {
    return false;
  }
  return true;
}

function b3SingleInto(raw: string, out: TraceContext): Parsed {
  const s = trimOws(raw);
  const n = s.length;
  if (n == 0) return Parsed.Absent;
  if (s.indexOf(",") >= 0) return Parsed.Invalid;
  if (n == 1) return b3StateInto(s.charCodeAt(0), out) ? Parsed.SamplingOnly : Parsed.Invalid;
  // 32 + 1 + 16 + 1 + 1 + 1 + 16 is the longest form.
  if (n > 68) return Parsed.Invalid;
  const dash = s.indexOf("-");
  if (dash < 0 || !traceIdInto(s, 0, dash, out)) return Parsed.Invalid;
  let p = dash + 1;
  if (!hexAt(s, p, 16, n)) return Parsed.Invalid;
  out.spanId = lowerHexToU64(s, p, 16);
  if (out.spanId == 0) return Parsed.Invalid;
  p += 16;
  if (p == n) return Parsed.Ids;
  if (s.charCodeAt(p) != 0x2d || p + 1 >= n || !b3StateInto(s.charCodeAt(p + 1), out)) return Parsed.Invalid;
  p += 2;
  if (p == n) return Parsed.Ids;
  if (s.charCodeAt(p) != 0x2d || n - (p + 1) != 16 || !isLowerHex(s, p + 1, 16)) return Parsed.Invalid;
  out.parentSpanId = lowerHexToU64(s, p + 1, 16);
  return Parsed.Ids;
}

function b3MultiInto(
  traceIdRaw: string,
  spanIdRaw: string,
  parentSpanIdRaw: string,
  sampledRaw: string,
  flagsRaw: string,
  out: TraceContext,
): Parsed {
  const traceId = trimOws(traceIdRaw);
  const spanId = trimOws(spanIdRaw);
  const parentSpanId = trimOws(parentSpanIdRaw);
  const sampled = trimOws(sampledRaw);
  const debug = trimOws(flagsRaw) == "1";
  if (sampled.length > 0) {
    if (sampled == "1" || sampled == "true") out.sampled = Sampling.Yes;
    else if (sampled == "0" || sampled == "false") out.sampled = Sampling.No;
    else return Parsed.Invalid;
  }
  if (debug) {
    out.debug = true;
    out.sampled = Sampling.Yes;
  }
  if (traceId.length == 0 && spanId.length == 0 && parentSpanId.length == 0) {
    return sampled.length > 0 || debug ? Parsed.SamplingOnly : Parsed.Absent;
  }
  if (!traceIdInto(traceId, 0, traceId.length, out)) return Parsed.Invalid;
  if (spanId.length != 16 || !isLowerHex(spanId, 0, 16)) return Parsed.Invalid;
  out.spanId = lowerHexToU64(spanId, 0, 16);
  if (out.spanId == 0) return Parsed.Invalid;
  if (parentSpanId.length > 0) {
    if (parentSpanId.length != 16 || !isLowerHex(parentSpanId, 0, 16)) return Parsed.Invalid;
    out.parentSpanId = lowerHexToU64(parentSpanId, 0, 16);
  }
  return Parsed.Ids;
}

/** The context in a traceparent value, or null when it is absent (empty) or invalid. */
export function parseTraceparent(value: string): TraceContext | null {
  const out = new TraceContext();
  return traceparentInto(value, out) == Parsed.Ids ? out : null;
}

/**
 * The context in a `b3` value, or null when absent or invalid. A sampling-only value (`0`, `1`,
 * `d`) gives a context without ids (hasIds() false) carrying the decision.
 */
export function parseB3Single(value: string): TraceContext | null {
  const out = new TraceContext();
  const r = b3SingleInto(value, out);
  return r == Parsed.Ids || r == Parsed.SamplingOnly ? out : null;
}

/**
 * The context in the x-b3-* values ("" = header absent), or null when absent or invalid.
 * Sampling-only input gives a context without ids, as parseB3Single.
 */
export function parseB3Multi(
  traceId: string,
  spanId: string,
  parentSpanId: string,
  sampled: string,
  flags: string,
): TraceContext | null {
  const out = new TraceContext();
  const r = b3MultiInto(traceId, spanId, parentSpanId, sampled, flags, out);
  return r == Parsed.Ids || r == Parsed.SamplingOnly ? out : null;
}

// ---------------------------------------------------------------------------------------------
// Extraction

/** Raw request header values as Envoy returns them; "" = absent. */
export class TraceHeaders {
  traceparent: string = "";
  tracestate: string = "";
  b3: string = "";
  xB3TraceId: string = "";
  xB3SpanId: string = "";
  xB3ParentSpanId: string = "";
  xB3Sampled: string = "";
  xB3Flags: string = "";
}

export class ExtractResult {
  /** The winning context (with ids), or null: start a fresh trace. */
  context: TraceContext | null = null;
  /** The format `context` came from; None without one. */
  format: TraceFormat = TraceFormat.None;
  /** The upstream sampling decision to honour: the context's, else a sampling-only header's. */
  sampled: Sampling = Sampling.Unset;
  debug: bool = false;
  /** The format the sampling decision came from (None: no upstream decision). */
  samplingFormat: TraceFormat = TraceFormat.None;
  /** Some trace header was present but malformed (or duplicated) and was ignored. */
  invalid: bool = false;
  /** Bit (1 << format) for each format that was present but invalid. */
  invalidFormats: u32 = 0;
  /** tracestate accompanied the winning traceparent but was invalid and was dropped. */
  traceStateInvalid: bool = false;
  /** Two valid formats disagreed on the trace id; the first in order won. */
  conflict: bool = false;

  isInvalid(format: TraceFormat): bool {
    return (this.invalidFormats & (1 << (<u32>format & 31))) != 0;
  }
}

/**
 * Reads the trace context from `headers`, trying `formats` in order (see "Extraction
 * precedence" at the top of this file). Unknown or repeated entries in `formats` are skipped.
 */
export function extractTraceContext(headers: TraceHeaders, formats: TraceFormat[] = DEFAULT_TRACE_FORMATS): ExtractResult {
  const r = new ExtractResult();
  let seen: u32 = 0;
  let w3c: TraceContext | null = null;
  let samplingOnly: TraceContext | null = null;
  let samplingOnlyFormat = TraceFormat.None;
  for (let i = 0; i < formats.length; i++) {
    const f = unchecked(formats[i]);
    if (f != TraceFormat.W3C && f != TraceFormat.B3Single && f != TraceFormat.B3Multi) continue;
    const bit: u32 = 1 << <u32>f;
    if (seen & bit) continue;
    seen |= bit;
    const ctx = new TraceContext();
    let status = Parsed.Absent;
    if (f == TraceFormat.W3C) {
      status = traceparentInto(headers.traceparent, ctx);
    } else if (f == TraceFormat.B3Single) {
      status = b3SingleInto(headers.b3, ctx);
    } else {
      status = b3MultiInto(
        headers.xB3TraceId,
        headers.xB3SpanId,
        headers.xB3ParentSpanId,
        headers.xB3Sampled,
        headers.xB3Flags,
        ctx,
      );
    }
    if (status == Parsed.Invalid) {
      r.invalid = true;
      r.invalidFormats |= bit;
    } else if (status == Parsed.SamplingOnly) {
      if (samplingOnly === null) {
        samplingOnly = ctx;
        samplingOnlyFormat = f;
      }
    } else if (status == Parsed.Ids) {
      if (f == TraceFormat.W3C) w3c = ctx;
      const winner = r.context;
      if (winner === null) {
        r.context = ctx;
        r.format = f;
      } else if (!winner.sameTrace(ctx)) {
        r.conflict = true;
      }
    }
  }
  const winner = r.context;
  if (winner !== null) {
    if (winner.sampled == Sampling.Unset && !winner.debug && samplingOnly !== null) {
      winner.sampled = samplingOnly.sampled;
      winner.debug = samplingOnly.debug;
      r.samplingFormat = samplingOnlyFormat;
    } else if (winner.sampled != Sampling.Unset || winner.debug) {
      r.samplingFormat = r.format;
    }
    r.sampled = winner.sampled;
    r.debug = winner.debug;
    if (w3c !== null && winner.sameTrace(w3c)) {
      const ts = normalizeTraceState(headers.tracestate);
      if (ts === null) {
        r.traceStateInvalid = true;
        r.invalid = true;
      } else {
        winner.traceState = ts;
      }
    }
  } else if (samplingOnly !== null) {
    r.sampled = samplingOnly.sampled;
    r.debug = samplingOnly.debug;
    r.samplingFormat = samplingOnlyFormat;
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Ids, sampling and the span we propagate

/** Zero draws in a row before giving up on the source (a broken source must not hang the VM). */
const MAX_ZERO_DRAWS = 8;
/** Used only if the source returned zero MAX_ZERO_DRAWS times in a row. */
const FALLBACK_ID: u64 = 0x9e3779b97f4a7c15;

/** A non-zero 64-bit id: redraws on zero. */
export function newId64(rnd: RandomSource): u64 {
  for (let i = 0; i < MAX_ZERO_DRAWS; i++) {
    const v = rnd.next64();
    if (v != 0) return v;
  }
  return FALLBACK_ID;
}

/** A new trace: random 128-bit trace id (low half non-zero), non-zero span id, no decision. */
export function newRootContext(rnd: RandomSource): TraceContext {
  const c = new TraceContext();
  c.traceIdHigh = rnd.next64();
  c.traceIdLow = newId64(rnd);
  c.spanId = newId64(rnd);
  return c;
}

/** A child of `parent`: same trace (and tracestate, sampling, 64-bit flag), new span id. */
export function childOf(parent: TraceContext, rnd: RandomSource): TraceContext {
  const c = new TraceContext();
  c.traceIdHigh = parent.traceIdHigh;
  c.traceIdLow = parent.traceIdLow;
  c.traceId64 = parent.traceId64;
  c.parentSpanId = parent.spanId;
  c.sampled = parent.sampled;
  c.debug = parent.debug;
  c.traceState = parent.traceState;
  let id = newId64(rnd);
  if (id == parent.spanId) id = newId64(rnd);
  c.spanId = id;
  return c;
}

/** round(percentage * 10_000) clamped to [0, SAMPLING_SCALE]; NaN gives 0. */
export function samplingThreshold(percentage: f64): u64 {
  if (!(percentage > 0.0)) return 0;
  if (percentage >= 100.0) return SAMPLING_SCALE;
  return <u64>Math.round(percentage * 10_000.0);
}

/**
 * Whether to sample: debug → yes; an upstream Yes/No is honoured; otherwise
 * `random % 1_000_000 < samplingThreshold(percentage)`.
 */
export function decideSampling(upstream: Sampling, debug: bool, percentage: f64, random: u64): bool {
  if (debug || upstream == Sampling.Yes) return true;
  if (upstream == Sampling.No) return false;
  return random % SAMPLING_SCALE < samplingThreshold(percentage);
}

export class TraceOptions {
  /** Formats read, in precedence order. */
  formats: TraceFormat[] = [TraceFormat.W3C, TraceFormat.B3Single, TraceFormat.B3Multi];
  /** Our tracestate key; "" (or an invalid key) adds no entry. Validate with isPortableTraceStateKey. */
  traceStateKey: string = DEFAULT_TRACESTATE_KEY;
  /** 0-100, Istio's random_sampling_percentage. */
  randomSamplingPercentage: f64 = DEFAULT_SAMPLING_PERCENTAGE;
}

/**
 * Our span for a request: a child of the extracted context, or a new root when there is none;
 * sampled per decideSampling (a random draw only when there is no upstream decision), so
 * `sampled` is always Yes or No; tracestate gets `<key>=<our span id>` at the left.
 * Draw order: [trace id high, trace id low (root only)], span id, [sampling].
 */
export function startSpan(extracted: ExtractResult, options: TraceOptions, rnd: RandomSource): TraceContext {
  const parent = extracted.context;
  const span = parent !== null ? childOf(parent, rnd) : newRootContext(rnd);
  const upstream = extracted.sampled;
  const debug = extracted.debug;
  const needDraw = !debug && upstream == Sampling.Unset;
  const random: u64 = needDraw ? rnd.next64() : 0;
  span.debug = debug;
  span.sampled = decideSampling(upstream, debug, options.randomSamplingPercentage, random) ? Sampling.Yes : Sampling.No;
  // An empty or invalid key adds nothing; the incoming list is still bounded.
  span.traceState = updateTraceState(span.traceState, options.traceStateKey, u64ToHex(span.spanId));
  return span;
}

// ---------------------------------------------------------------------------------------------
// Formatting ("" means: do not send the header)

/** `00-<trace id>-<span id>-01` (sampled or debug) or `-00`; "" for a context without ids. */
export function formatTraceparent(ctx: TraceContext): string {
  if (!ctx.hasIds()) return "";
  const s = newAsciiString(55);
  putChar(s, 0, 0x30);
  putChar(s, 1, 0x30);
  putChar(s, 2, 0x2d);
  putHex16(s, 3, ctx.traceIdHigh);
  putHex16(s, 19, ctx.traceIdLow);
  putChar(s, 35, 0x2d);
  putHex16(s, 36, ctx.spanId);
  putChar(s, 52, 0x2d);
  putChar(s, 53, 0x30);
  putChar(s, 54, ctx.isSampled() ? 0x31 : 0x30);
  return s;
}

/** The trace id for B3: 16 hex when it arrived as a 64-bit B3 id (high half 0), else 32. */
export function b3TraceIdHex(ctx: TraceContext): string {
  return ctx.traceId64 && ctx.traceIdHigh == 0 ? u64ToHex(ctx.traceIdLow) : u128ToHex(ctx.traceIdHigh, ctx.traceIdLow);
}

/** `d` (debug), `1`, `0`, or "" (no decision). */
function b3State(ctx: TraceContext): string {
  if (ctx.debug) return "d";
  if (ctx.sampled == Sampling.Yes) return "1";
  if (ctx.sampled == Sampling.No) return "0";
  return "";
}

/**
 * The `b3` value: `{TraceId}-{SpanId}[-{State}[-{ParentSpanId}]]` (the parent only follows a
 * state, so without a decision it is left out); for a context without ids the state alone.
 */
export function formatB3Single(ctx: TraceContext): string {
  const state = b3State(ctx);
  if (!ctx.hasIds()) return state;
  let out = b3TraceIdHex(ctx) + "-" + u64ToHex(ctx.spanId);
  if (state.length > 0) {
    out += "-" + state;
    if (ctx.parentSpanId != 0) out += "-" + u64ToHex(ctx.parentSpanId);
  }
  return out;
}

/** The x-b3-* values to send; "" = leave the header out. */
export class B3MultiValues {
  traceId: string = "";
  spanId: string = "";
  parentSpanId: string = "";
  sampled: string = "";
  flags: string = "";
}

/**
 * x-b3-* values: ids (parent only when non-zero), `x-b3-sampled` 1/0 (left out for debug, which
 * is sent as `x-b3-flags: 1` and implies accept, as B3 asks, and when there is no decision).
 */
export function formatB3Multi(ctx: TraceContext): B3MultiValues {
  const v = new B3MultiValues();
  if (ctx.hasIds()) {
    v.traceId = b3TraceIdHex(ctx);
    v.spanId = u64ToHex(ctx.spanId);
    if (ctx.parentSpanId != 0) v.parentSpanId = u64ToHex(ctx.parentSpanId);
  }
  if (ctx.debug) v.flags = "1";
  else if (ctx.sampled == Sampling.Yes) v.sampled = "1";
  else if (ctx.sampled == Sampling.No) v.sampled = "0";
  return v;
}

// ---------------------------------------------------------------------------------------------
// The same header values as bytes, written into a caller's scratch buffer: a request that only
// forwards its trace context allocates nothing for it. Each returns the length written.

/** formatTraceparent's value at `out` (55 bytes); 0 for a context without ids. */
export function writeTraceparent(ctx: TraceContext, out: usize): i32 {
  if (!ctx.hasIds()) return 0;
  store<u8>(out, 0x30);
  store<u8>(out, 0x30, 1);
  store<u8>(out, 0x2d, 2);
  writeHex(out + 3, ctx.traceIdHigh, 16);
  writeHex(out + 19, ctx.traceIdLow, 16);
  store<u8>(out, 0x2d, 35);
  writeHex(out + 36, ctx.spanId, 16);
  store<u8>(out, 0x2d, 52);
  store<u8>(out, 0x30, 53);
  store<u8>(out, ctx.isSampled() ? 0x31 : 0x30, 54);
  return 55;
}

/** b3TraceIdHex's value at `out` (16 or 32 bytes). */
export function writeB3TraceId(ctx: TraceContext, out: usize): i32 {
  if (ctx.traceId64 && ctx.traceIdHigh == 0) {
    writeHex(out, ctx.traceIdLow, 16);
    return 16;
  }
  writeHex(out, ctx.traceIdHigh, 16);
  writeHex(out + 16, ctx.traceIdLow, 16);
  return 32;
}

/** A 64-bit id as 16 hex bytes at `out`. */
export function writeSpanId(id: u64, out: usize): i32 {
  writeHex(out, id, 16);
  return 16;
}

// ---------------------------------------------------------------------------------------------
// UUIDv4 and x-request-id

function uuidFromHalves(high: u64, low: u64): string {
  high = (high & ~(<u64>0xf000)) | 0x4000; // version 4
  low = (low & ~(<u64>0xc0 << 56)) | (<u64>0x80 << 56); // variant 10xx
  const s = newAsciiString(36);
  putHex(s, 0, high >> 32, 8);
  putChar(s, 8, 0x2d);
  putHex(s, 9, high >> 16, 4);
  putChar(s, 13, 0x2d);
  putHex(s, 14, high, 4);
  putChar(s, 18, 0x2d);
  putHex(s, 19, low >> 48, 4);
  putChar(s, 23, 0x2d);
  putHex(s, 24, low, 12);
  return s;
}

/**
 * A UUIDv4 in canonical lowercase form from the first 16 bytes of `bytes` (missing bytes count
 * as zero), with the version and variant bits set. `bytes` is not modified.
 */
export function uuidV4FromBytes(bytes: Uint8Array): string {
  let high: u64 = 0;
  let low: u64 = 0;
  const n = bytes.length;
  for (let i = 0; i < 8; i++) high = (high << 8) | (i < n ? <u64>unchecked(bytes[i]) : 0);
  for (let i = 8; i < 16; i++) low = (low << 8) | (i < n ? <u64>unchecked(bytes[i]) : 0);
  return uuidFromHalves(high, low);
}

/** A UUIDv4 from two draws of `rnd`. */
export function uuidV4(rnd: RandomSource): string {
  const high = rnd.next64();
  const low = rnd.next64();
  return uuidFromHalves(high, low);
}

// @ts-ignore: decorator
@inline
function isAnyHex(c: i32): bool {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

/**
 * Whether `s` is a UUID in the canonical textual layout 8-4-4-4-12: exactly 36 characters,
 * hyphens at 8, 13, 18 and 23, hex digits elsewhere (either case, as RFC 9562 asks parsers to
 * accept). No braces, no `urn:uuid:`, no whitespace. Any version.
 */
export function isValidUuid(s: string): bool {
  if (s.length != 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i);
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != 0x2d) return false;
    } else if (!isAnyHex(c)) {
      return false;
    }
  }
  return true;
}

/** isValidUuid, and version 4 with the RFC variant (10xx). */
export function isUuidV4(s: string): bool {
  if (!isValidUuid(s) || s.charCodeAt(14) != 0x34) return false;
  const v = s.charCodeAt(19) | 0x20;
  return v == 0x38 || v == 0x39 || v == 0x61 || v == 0x62;
}

/**
 * Whether an incoming x-request-id is kept: 1 to MAX_REQUEST_ID_LENGTH UTF-16 code units of
 * what HTTP allows in a field value (no control characters other than HTAB, no DEL), not only
 * whitespace. Any format is fine, UUID or not: it is never used for sampling.
 */
export function isUsableRequestId(value: string): bool {
  const n = value.length;
  if (n < 1 || n > MAX_REQUEST_ID_LENGTH) return false;
  let visible = false;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c != 0x09) || c == 0x7f) return false;
    if (!isOws(c)) visible = true;
  }
  return visible;
}

/** `value` when isUsableRequestId, else a new UUIDv4 from `rnd`. */
export function requestIdOrNew(value: string, rnd: RandomSource): string {
  return isUsableRequestId(value) ? value : uuidV4(rnd);
}
