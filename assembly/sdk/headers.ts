// Reads the headers a filter cares about with one host call: the whole map comes back in the
// ABI's pairs form and only the wanted keys are located, by position in that buffer. Nothing is
// decoded until asked for (most values are only compared, forwarded or parsed as bytes), so a
// request pays no UTF-8 to UTF-16 conversion for headers it merely looks at. A repeated header
// yields its first two values joined with "," when read as text (as Envoy joins them for
// attributes), enough for a parser to see the repeat; further repeats are ignored.

const EMPTY = new ArrayBuffer(0);

export class HeaderSnapshot {
  /** The pairs buffer the positions point into; kept alive with the snapshot. */
  buffer: ArrayBuffer = new ArrayBuffer(0);
  /** Per wanted key: position and length of the first and second value, and the count. */
  starts: StaticArray<usize>;
  lengths: StaticArray<u32>;
  secondStarts: StaticArray<usize>;
  secondLengths: StaticArray<u32>;
  counts: StaticArray<i32>;

  constructor(count: i32) {
    this.starts = new StaticArray<usize>(count);
    this.lengths = new StaticArray<u32>(count);
    this.secondStarts = new StaticArray<usize>(count);
    this.secondLengths = new StaticArray<u32>(count);
    this.counts = new StaticArray<i32>(count);
  }

  /** Drops the buffer, so a reused snapshot does not keep the last request's headers alive. */
  release(): void {
    this.buffer = EMPTY;
    for (let k = 0; k < this.counts.length; k++) this.counts[k] = 0;
  }

  has(index: i32): bool {
    return this.counts[index] > 0;
  }

  /** The value as text (a repeat joined with ","), or null when absent. */
  get(index: i32): string | null {
    const n = this.counts[index];
    if (n == 0) return null;
    const first = String.UTF8.decodeUnsafe(this.starts[index], this.lengths[index]);
    if (n == 1) return first;
    return first + "," + String.UTF8.decodeUnsafe(this.secondStarts[index], this.secondLengths[index]);
  }

  /** Position of the (first) value's bytes; valid while the snapshot lives. */
  start(index: i32): usize {
    return this.starts[index];
  }

  /** Length of the (first) value; 0 when absent. */
  length(index: i32): u32 {
    return this.counts[index] > 0 ? this.lengths[index] : 0;
  }

  /** The header is present once and holds exactly `length` bytes at `value`. */
  equals(index: i32, value: usize, length: usize): bool {
    return this.counts[index] == 1 && <usize>this.lengths[index] == length && memory.compare(this.starts[index], value, length) == 0;
  }
}

/**
 * Locates `keys` (lowercase, UTF-8) in serialized pairs (reusing `into`, when given, so a
 * callback that reads headers on every request allocates no snapshot): u32 count, count × (u32 key length,
 * u32 value length), then each key and value followed by a NUL. Malformed input yields what was
 * read before the damage; it never reads outside the buffer.
 */
export function pickHeaders(pairs: ArrayBuffer, keys: StaticArray<ArrayBuffer>, into: HeaderSnapshot | null = null): HeaderSnapshot {
  let snapshot: HeaderSnapshot;
  if (into !== null && into.counts.length == keys.length) {
    snapshot = into;
    for (let k = 0; k < keys.length; k++) snapshot.counts[k] = 0;
  } else {
    snapshot = new HeaderSnapshot(keys.length);
  }
  snapshot.buffer = pairs;
  // Lengths of the wanted keys as a bit mask: most headers are skipped on their length alone.
  let lengths: u64 = 0;
  for (let k = 0; k < keys.length; k++) lengths |= <u64>1 << (<u64>keys[k].byteLength & 63);
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
    if (keyLength < 64 && (lengths & (<u64>1 << keyLength)) == 0) {
      data = value + <usize>valueLength + 1;
      continue;
    }
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k];
      if (<u64>key.byteLength == keyLength && memory.compare(changetype<usize>(key), data, <usize>keyLength) == 0) {
        const seen = snapshot.counts[k]++;
        if (seen == 0) {
          snapshot.starts[k] = value;
          snapshot.lengths[k] = <u32>valueLength;
        } else if (seen == 1) {
          snapshot.secondStarts[k] = value;
          snapshot.secondLengths[k] = <u32>valueLength;
        }
        break;
      }
    }
    data = value + <usize>valueLength + 1;
  }
  return snapshot;
}
