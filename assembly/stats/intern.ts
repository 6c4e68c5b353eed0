// Label values interned as small integers, so a request's label tuple is a handful of ids and
// its metric-id lookup builds no label text. A value is sanitized once, when first seen.
// Bounded: a full table answers -1 for new values, and the caller reports such a request on the
// overflow series, as it does past max_series.
import { sanitizeLabelValue } from "./names";

export class Interner {
  private ids: Map<string, i32> = new Map();
  private values: string[] = [];
  // The last value looked up by bytes: most requests repeat the previous one (the same peer
  // principal, cluster or host), which then costs one comparison.
  private lastBytes: ArrayBuffer = new ArrayBuffer(0);
  private lastId: i32 = -1;

  constructor(readonly capacity: i32) {}

  /** The id of `raw` (its sanitized form is what value() returns), or -1 when full. */
  id(raw: string): i32 {
    if (this.ids.has(raw)) return this.ids.get(raw);
    if (this.values.length >= this.capacity) return -1;
    const id = this.values.length;
    this.values.push(sanitizeLabelValue(raw));
    this.ids.set(raw, id);
    return id;
  }

  /** The id of the UTF-8 text at ptr, decoding it only when it differs from the last one. */
  idOfBytes(ptr: usize, length: usize): i32 {
    const last = this.lastBytes;
    if (this.lastId >= 0 && <usize>last.byteLength == length && memory.compare(changetype<usize>(last), ptr, length) == 0) {
      return this.lastId;
    }
    const id = this.id(String.UTF8.decodeUnsafe(ptr, length));
    if (id >= 0) {
      const copy = new ArrayBuffer(<i32>length);
      memory.copy(changetype<usize>(copy), ptr, length);
      this.lastBytes = copy;
      this.lastId = id;
    }
    return id;
  }

  /** The sanitized value of an id this table gave out. */
  value(id: i32): string {
    return this.values[id];
  }
}
