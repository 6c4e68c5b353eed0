// Reads the headers a filter cares about with one host call: the whole map comes back in the
// ABI's pairs form and only the wanted keys are decoded. Cheaper than one proxy_get_header_map_value
// per key once a callback needs more than a few. A repeated header yields its first two values
// joined with "," (as Envoy joins them for attributes), which is enough for a parser to see the
// repeat; further repeats are dropped, so a flood of repeats costs nothing.

export class HeaderSnapshot {
  /** Value per wanted key (same order as the keys), null when absent. */
  values: StaticArray<string | null>;
  /** How many times each key occurred. */
  counts: StaticArray<i32>;

  constructor(count: i32) {
    this.values = new StaticArray<string | null>(count);
    this.counts = new StaticArray<i32>(count);
  }

  get(index: i32): string | null {
    return this.values[index];
  }
}

/**
 * Picks `keys` (lowercase, UTF-8) out of serialized pairs: u32 count, count × (u32 key length,
 * u32 value length), then each key and value followed by a NUL. Malformed input yields what was
 * read before the damage; it never reads outside the buffer.
 */
export function pickHeaders(pairs: ArrayBuffer, keys: StaticArray<ArrayBuffer>): HeaderSnapshot {
  const snapshot = new HeaderSnapshot(keys.length);
  const size = <usize>pairs.byteLength;
  if (size < 4) return snapshot;
  const base = changetype<usize>(pairs);
  const count = <usize>load<u32>(base);
  if (count > (size - 4) / 8) return snapshot;
  let data = base + 4 + count * 8;
  const end = base + size;
  for (let i: usize = 0; i < count; i++) {
    const keyLength = <u64>load<u32>(base + 4 + i * 8);
    const valueLength = <u64>load<u32>(base + 8 + i * 8);
    // 64-bit sum: two 32-bit lengths near 2^32 must not wrap around past the check.
    if (keyLength + valueLength + 2 > <u64>(end - data)) return snapshot;
    const value = data + <usize>keyLength + 1;
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k];
      if (<u64>key.byteLength == keyLength && memory.compare(changetype<usize>(key), data, <usize>keyLength) == 0) {
        const seen = snapshot.counts[k]++;
        if (seen < 2) {
          const text = String.UTF8.decodeUnsafe(value, <usize>valueLength);
          snapshot.values[k] = seen == 0 ? text : snapshot.values[k]! + "," + text;
        }
        break;
      }
    }
    data = value + <usize>valueLength + 1;
  }
  return snapshot;
}
