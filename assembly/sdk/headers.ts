// Reads the headers a filter cares about with one host call: the whole map comes back in the
// ABI's pairs form and only the wanted keys are decoded. Cheaper than one proxy_get_header_map_value
// per key once a callback needs more than a few. Repeated headers are joined with ",", the way
// Envoy joins them for attributes.

export class HeaderSnapshot {
  /** Value per wanted key (same order as the keys), null when absent. */
  values: StaticArray<string | null>;

  constructor(count: i32) {
    this.values = new StaticArray<string | null>(count);
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
    const keyLength = <usize>load<u32>(base + 4 + i * 8);
    const valueLength = <usize>load<u32>(base + 8 + i * 8);
    if (keyLength + valueLength + 2 > end - data) return snapshot;
    const value = data + keyLength + 1;
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k];
      if (<usize>key.byteLength == keyLength && memory.compare(changetype<usize>(key), data, keyLength) == 0) {
        const text = String.UTF8.decodeUnsafe(value, valueLength);
        const previous = snapshot.values[k];
        snapshot.values[k] = previous === null ? text : previous + "," + text;
        break;
      }
    }
    data = value + valueLength + 1;
  }
  return snapshot;
}
