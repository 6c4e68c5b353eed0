// Standard base64 (RFC 4648 §4, "+/" alphabet) for the x-envoy-peer-metadata header. Encoding
// pads, as Envoy's Base64::encode does; decoding accepts padded and unpadded text because peers
// differ, and answers null instead of trapping since the text comes from the network.

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const PAD: u8 = 0x3d; // '='

export function base64Encode(data: Uint8Array): string {
  const n = data.length;
  const out = new Uint8Array(((n + 2) / 3) * 4);
  let o = 0;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const triple = (<u32>data[i] << 16) | (<u32>data[i + 1] << 8) | <u32>data[i + 2];
    out[o++] = <u8>ALPHABET.charCodeAt(triple >> 18);
    out[o++] = <u8>ALPHABET.charCodeAt((triple >> 12) & 63);
    out[o++] = <u8>ALPHABET.charCodeAt((triple >> 6) & 63);
    out[o++] = <u8>ALPHABET.charCodeAt(triple & 63);
  }
  const rest = n - i;
  if (rest > 0) {
    const triple = (<u32>data[i] << 16) | (rest == 2 ? <u32>data[i + 1] << 8 : 0);
    out[o++] = <u8>ALPHABET.charCodeAt(triple >> 18);
    out[o++] = <u8>ALPHABET.charCodeAt((triple >> 12) & 63);
    out[o++] = rest == 2 ? <u8>ALPHABET.charCodeAt((triple >> 6) & 63) : PAD;
    out[o++] = PAD;
  }
  // The output is ASCII, so decoding it as UTF-8 is a plain widening copy.
  return String.UTF8.decodeUnsafe(out.dataStart, out.length);
}

/** The 6-bit value of one base64 character, or -1 when it is not in the alphabet. */
function sextet(c: i32): i32 {
  if (c >= 0x41 && c <= 0x5a) return c - 0x41; // A-Z
  if (c >= 0x61 && c <= 0x7a) return c - 0x61 + 26; // a-z
  if (c >= 0x30 && c <= 0x39) return c - 0x30 + 52; // 0-9
  if (c == 0x2b) return 62; // +
  if (c == 0x2f) return 63; // /
  return -1;
}

/**
 * The bytes that `text` encodes, or null for a character outside the alphabet (whitespace
 * included), a length no encoder produces, or padding anywhere but completing the last quantum.
 * Non-zero bits left over in the last character are ignored, as most decoders do.
 */
export function base64Decode(text: string): Uint8Array | null {
  let len = text.length;
  if (len > 0 && text.charCodeAt(len - 1) == PAD) {
    // Padded text comes in whole quanta with one or two '='; a third '=' fails as a character.
    if (len & 3) return null;
    len--;
    if (text.charCodeAt(len - 1) == PAD) len--;
  }
  const tail = len & 3;
  if (tail == 1) return null; // one character carries only 6 bits, not a byte
  const out = new Uint8Array((len >> 2) * 3 + (tail > 0 ? tail - 1 : 0));
  let bits: u32 = 0;
  let pending = 0;
  let o = 0;
  for (let i = 0; i < len; i++) {
    const v = sextet(text.charCodeAt(i));
    if (v < 0) return null;
    bits = (bits << 6) | <u32>v;
    pending += 6;
    if (pending >= 8) {
      pending -= 8;
      out[o++] = <u8>(bits >> pending);
    }
  }
  return out;
}
