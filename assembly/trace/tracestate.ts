// W3C `tracestate`: parsing to a canonical form, lookup, and the update a vendor makes when it
// propagates (its own entry moved to the left, the list bounded). Invalid input is reported by
// value (null), never by trapping.
//
// Grammar (W3C Trace Context, current editor's draft, which the W3C test suite checks):
//   list        = list-member 0*31( OWS "," OWS list-member )
//   list-member = (key "=" value) / OWS
//   key         = ( lcalpha / DIGIT ) 0*255( lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@" )
//   value       = 0*255( %x20 / nblk-chr ) nblk-chr
//   nblk-chr    = %x21-2B / %x2D-3C / %x3E-7E
// The key rule is a superset of Level 1's `simple-key / tenant-id "@" system-id`, so everything
// Level 1 accepts is accepted; `isPortableTraceStateKey` checks the stricter Level 1 rule for our
// own configured key so that our entry is valid for parsers of either level.
import { joinStrings } from "../text/join";

/** Most list members in a valid tracestate, and in what we send. */
export const MAX_TRACESTATE_MEMBERS: i32 = 32;
/** Most characters of the tracestate we send (members and commas, no OWS). */
export const MAX_TRACESTATE_LENGTH: i32 = 512;
/** When shortening to MAX_TRACESTATE_LENGTH, members longer than this go first (W3C SHOULD). */
export const TRACESTATE_LARGE_MEMBER: i32 = 128;
/** Longest key and longest value. */
export const MAX_TRACESTATE_KEY_LENGTH: i32 = 256;
export const MAX_TRACESTATE_VALUE_LENGTH: i32 = 256;

// @ts-ignore: decorator
@inline
function isOws(c: i32): bool {
  return c == 0x20 || c == 0x09;
}

// @ts-ignore: decorator
@inline
function isLcAlpha(c: i32): bool {
  return c >= 0x61 && c <= 0x7a;
}

// @ts-ignore: decorator
@inline
function isDigit(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}

/** lcalpha / DIGIT / "_" / "-" / "*" / "/" (Level 1 key characters, without "@"). */
// @ts-ignore: decorator
@inline
function isKeyChar(c: i32): bool {
  return isLcAlpha(c) || isDigit(c) || c == 0x5f || c == 0x2d || c == 0x2a || c == 0x2f;
}

/** Whether `s[start, end)` is a key by the current grammar (see the top of this file). */
function isKeyRange(s: string, start: i32, end: i32): bool {
  const len = end - start;
  if (len < 1 || len > MAX_TRACESTATE_KEY_LENGTH) return false;
  const first = s.charCodeAt(start);
  if (!isLcAlpha(first) && !isDigit(first)) return false;
  for (let i = start + 1; i < end; i++) {
    const c = s.charCodeAt(i);
    if (!isKeyChar(c) && c != 0x40 /* @ */) return false;
  }
  return true;
}

/** Whether `s[start, end)` is a value: 1 to 256 of 0x20-0x7E except ',' and '=', not ending in a space. */
function isValueRange(s: string, start: i32, end: i32): bool {
  const len = end - start;
  if (len < 1 || len > MAX_TRACESTATE_VALUE_LENGTH) return false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c == 0x2c || c == 0x3d) return false;
  }
  return s.charCodeAt(end - 1) != 0x20;
}

/** Whether `key` is a valid tracestate key (current grammar, which includes Level 1's). */
export function isValidTraceStateKey(key: string): bool {
  return isKeyRange(key, 0, key.length);
}

/** Whether `value` is a valid tracestate value. */
export function isValidTraceStateValue(value: string): bool {
  return isValueRange(value, 0, value.length);
}

/**
 * Whether `key` is valid under Level 1's stricter rule too: `simple-key` (lcalpha then up to 255
 * key characters) or `tenant-id "@" system-id` (tenant: lcalpha/DIGIT then up to 240; system:
 * lcalpha then up to 13). Use it to validate our own configured key.
 */
export function isPortableTraceStateKey(key: string): bool {
  const n = key.length;
  if (n < 1 || n > MAX_TRACESTATE_KEY_LENGTH) return false;
  const at = key.indexOf("@");
  if (at < 0) {
    if (!isLcAlpha(key.charCodeAt(0))) return false;
    for (let i = 1; i < n; i++) if (!isKeyChar(key.charCodeAt(i))) return false;
    return true;
  }
  const tenantLen = at;
  const systemLen = n - at - 1;
  if (tenantLen < 1 || tenantLen > 241 || systemLen < 1 || systemLen > 14) return false;
  const t0 = key.charCodeAt(0);
  if (!isLcAlpha(t0) && !isDigit(t0)) return false;
  for (let i = 1; i < at; i++) if (!isKeyChar(key.charCodeAt(i))) return false;
  if (!isLcAlpha(key.charCodeAt(at + 1))) return false;
  for (let i = at + 2; i < n; i++) if (!isKeyChar(key.charCodeAt(i))) return false;
  return true;
}

/** Key length of a canonical member (`key=value`), i.e. the position of its '='. */
// @ts-ignore: decorator
@inline
function keyLength(member: string): i32 {
  return member.indexOf("=");
}

/** Whether canonical `member` has key `s[start, start + len)`. */
function memberHasKey(member: string, s: string, start: i32, len: i32): bool {
  if (keyLength(member) != len) return false;
  return memory.compare(changetype<usize>(member), changetype<usize>(s) + (<usize>start << 1), <usize>len << 1) == 0;
}

/**
 * The members of `value` in canonical form (OWS and empty members removed, later duplicates of
 * a key dropped: the leftmost is the most recent), or null when `value` is not a valid
 * tracestate: a non-empty member that is not `key=value` by the grammar, or more than 32
 * non-empty members. The empty string (and OWS/commas only) gives an empty list.
 */
export function parseTraceStateMembers(value: string): string[] | null {
  const members: string[] = [];
  const n = value.length;
  let count = 0;
  let i = 0;
  while (i <= n) {
    let j = value.indexOf(",", i);
    if (j < 0) j = n;
    let a = i;
    let b = j;
    while (a < b && isOws(value.charCodeAt(a))) a++;
    while (b > a && isOws(value.charCodeAt(b - 1))) b--;
    if (a < b) {
      if (++count > MAX_TRACESTATE_MEMBERS) return null;
      const eq = value.indexOf("=", a);
      if (eq < 0 || eq >= b) return null;
      if (!isKeyRange(value, a, eq) || !isValueRange(value, eq + 1, b)) return null;
      let duplicate = false;
      for (let k = 0; k < members.length; k++) {
        if (memberHasKey(unchecked(members[k]), value, a, eq - a)) {
          duplicate = true;
          break;
        }
      }
      if (!duplicate) members.push(value.substring(a, b));
    }
    i = j + 1;
  }
  return members;
}

/**
 * `value` in canonical form (members joined by "," without OWS, empty members and later
 * duplicate keys removed), "" for an empty list, or null when invalid (see
 * parseTraceStateMembers). A valid input is kept whole here; only `updateTraceState` bounds it.
 */
export function normalizeTraceState(value: string): string | null {
  const members = parseTraceStateMembers(value);
  if (members === null) return null;
  return joinStrings(members, ",");
}

/** The value for `key` in `traceState`, or null when absent or when `traceState` is invalid. */
export function traceStateGet(traceState: string, key: string): string | null {
  const members = parseTraceStateMembers(traceState);
  if (members === null) return null;
  for (let k = 0; k < members.length; k++) {
    const m = unchecked(members[k]);
    if (memberHasKey(m, key, 0, key.length)) return m.substring(key.length + 1);
  }
  return null;
}

/**
 * The tracestate to send: `key=value` first (any older entry for `key` removed, the order of the
 * others kept), then the incoming members, bounded to 32 members (dropping from the right) and to
 * 512 characters (dropping members longer than 128 characters first, right to left, then members
 * from the right; our own entry is never dropped). An invalid `traceState` is discarded whole.
 * An invalid `key` or `value` adds nothing (the incoming list is still normalized and bounded).
 */
export function updateTraceState(traceState: string, key: string, value: string): string {
  let members = parseTraceStateMembers(traceState);
  if (members === null) members = [];
  const out: string[] = [];
  let fixed = 0; // leading members that bounding must keep (our own entry)
  if (isValidTraceStateKey(key) && isValidTraceStateValue(value)) {
    out.push(key + "=" + value);
    fixed = 1;
  }
  for (let k = 0; k < members.length; k++) {
    const m = unchecked(members[k]);
    if (fixed == 1 && memberHasKey(m, key, 0, key.length)) continue;
    out.push(m);
  }
  if (out.length > MAX_TRACESTATE_MEMBERS) out.length = MAX_TRACESTATE_MEMBERS;
  let total = joinedLength(out);
  if (total > MAX_TRACESTATE_LENGTH) {
    for (let k = out.length - 1; k >= fixed && total > MAX_TRACESTATE_LENGTH; k--) {
      const len = unchecked(out[k]).length;
      if (len > TRACESTATE_LARGE_MEMBER) {
        out.splice(k, 1);
        total = joinedLength(out);
      }
    }
    while (total > MAX_TRACESTATE_LENGTH && out.length > fixed) {
      out.length = out.length - 1;
      total = joinedLength(out);
    }
  }
  return joinStrings(out, ",");
}

function joinedLength(members: string[]): i32 {
  let total = 0;
  for (let k = 0; k < members.length; k++) total += unchecked(members[k]).length;
  return members.length > 0 ? total + members.length - 1 : 0;
}
