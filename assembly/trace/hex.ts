// Lowercase hex for trace and span ids. Parsing reads the header string in place (no substrings);
// formatting writes straight into one freshly allocated string. Nothing here traps: positions
// outside the string simply fail validation.

/** The value of a lowercase hex digit, or -1 (uppercase digits are -1: W3C and B3 require lowercase). */
// @ts-ignore: decorator
@inline
export function lowerHexDigit(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10; // a-f
  return -1;
}

/** Whether `s[start, start + len)` lies inside `s` and is all lowercase hex. */
export function isLowerHex(s: string, start: i32, len: i32): bool {
  if (start < 0 || len <= 0 || start > s.length - len) return false;
  const base = changetype<usize>(s) + (<usize>start << 1);
  for (let i = 0; i < len; i++) {
    if (lowerHexDigit(<i32>load<u16>(base + (<usize>i << 1))) < 0) return false;
  }
  return true;
}

/**
 * The value of `s[start, start + len)` read as lowercase hex, for at most 16 digits. Call
 * `isLowerHex` first: a range that fails it (or is out of bounds) gives 0 here.
 */
export function lowerHexToU64(s: string, start: i32, len: i32): u64 {
  if (len > 16 || !isLowerHex(s, start, len)) return 0;
  const base = changetype<usize>(s) + (<usize>start << 1);
  let v: u64 = 0;
  for (let i = 0; i < len; i++) {
    v = (v << 4) | <u64>lowerHexDigit(<i32>load<u16>(base + (<usize>i << 1)));
  }
  return v;
}

/** A new string of `len` UTF-16 code units, to be filled with `putChar`. */
// @ts-ignore: decorator
@inline
export function newAsciiString(len: i32): string {
  return changetype<string>(__new(<usize>len << 1, idof<string>()));
}

/** Writes one code unit into a string made by `newAsciiString` (the caller keeps `i` in range). */
// @ts-ignore: decorator
@inline
export function putChar(s: string, i: i32, c: i32): void {
  store<u16>(changetype<usize>(s) + (<usize>i << 1), <u16>c);
}

// @ts-ignore: decorator
@inline
function hexChar(nibble: u32): i32 {
  return nibble < 10 ? <i32>(0x30 + nibble) : <i32>(0x57 + nibble);
}

/** Writes `v` as 16 lowercase hex digits into `s` at `at` (the caller keeps the range in `s`). */
export function putHex16(s: string, at: i32, v: u64): void {
  for (let i = 15; i >= 0; i--) {
    putChar(s, at + i, hexChar(<u32>(v & 0xf)));
    v >>= 4;
  }
}

/** Writes the low `digits` nibbles of `v` (at most 16) as lowercase hex into `s` at `at`. */
export function putHex(s: string, at: i32, v: u64, digits: i32): void {
  for (let i = digits - 1; i >= 0; i--) {
    putChar(s, at + i, hexChar(<u32>(v & 0xf)));
    v >>= 4;
  }
}

/** `v` as exactly 16 lowercase hex digits, e.g. `00f067aa0ba902b7`. */
export function u64ToHex(v: u64): string {
  const s = newAsciiString(16);
  putHex16(s, 0, v);
  return s;
}

/** A 128-bit id as exactly 32 lowercase hex digits, high half first. */
export function u128ToHex(high: u64, low: u64): string {
  const s = newAsciiString(32);
  putHex16(s, 0, high);
  putHex16(s, 16, low);
  return s;
}

/** Writes the low `digits` nibbles of `v` (at most 16) as lowercase hex bytes at `out`. */
export function writeHex(out: usize, v: u64, digits: i32): void {
  for (let i = digits - 1; i >= 0; i--) {
    store<u8>(out + <usize>i, <u8>hexChar(<u32>(v & 0xf)));
    v >>= 4;
  }
}
