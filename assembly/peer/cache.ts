// Decoded peers keyed by x-envoy-peer-metadata-id, so a peer's header is decoded once, not per
// request. Lookups work on the header bytes as they arrive (no text conversion): the last peer
// seen is compared first, since a sidecar mostly talks to few peers in a row, then a hash of the
// id. Bounded like Istio's (500 entries; when full, the oldest quarter is dropped), and in bytes:
// ids and values too long to be a real sidecar's are not cached. An entry answers only for the
// exact metadata value it was decoded from, so a caller cannot poison a real peer's id with a
// different claim.
import { WorkloadInfo } from "./workload";

/** Longest id and metadata value cached (a real sidecar's are about 100 and 400 bytes). */
export const MAX_CACHED_ID_LENGTH = 256;
export const MAX_CACHED_METADATA_LENGTH = 2048;

export class PeerEntry {
  /** Interned label ids the reporter attaches once (see plugin/telemetry.ts); -1 until then. */
  labels: i32 = -1;
  namespace: i32 = -1;

  constructor(
    readonly id: ArrayBuffer,
    readonly metadata: ArrayBuffer,
    readonly peer: WorkloadInfo,
  ) {}

  matches(idPtr: usize, idLength: usize, metadataPtr: usize, metadataLength: usize): bool {
    return (
      <usize>this.id.byteLength == idLength &&
      <usize>this.metadata.byteLength == metadataLength &&
      memory.compare(changetype<usize>(this.id), idPtr, idLength) == 0 &&
      memory.compare(changetype<usize>(this.metadata), metadataPtr, metadataLength) == 0
    );
  }
}

/** FNV-1a over bytes: cheap, and collisions only cost a miss (entries are compared in full). */
export function hashBytes(ptr: usize, length: usize): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i: usize = 0; i < length; i++) {
    h ^= load<u8>(ptr + i);
    h *= 0x01000193;
  }
  return h;
}

export function copyBytes(ptr: usize, length: usize): ArrayBuffer {
  const out = new ArrayBuffer(<i32>length);
  memory.copy(changetype<usize>(out), ptr, length);
  return out;
}

export class PeerCache {
  private byHash: Map<u32, PeerEntry> = new Map();
  private order: u32[] = [];
  private last: PeerEntry | null = null;

  constructor(readonly capacity: i32 = 500) {}

  get size(): i32 {
    return this.byHash.size;
  }

  /** The peer cached for the id at idPtr, if it was decoded from exactly the metadata given. */
  lookup(idPtr: usize, idLength: usize, metadataPtr: usize, metadataLength: usize): PeerEntry | null {
    const last = this.last;
    if (last !== null && last.matches(idPtr, idLength, metadataPtr, metadataLength)) return last;
    const h = hashBytes(idPtr, idLength);
    if (!this.byHash.has(h)) return null;
    const entry = this.byHash.get(h);
    if (!entry.matches(idPtr, idLength, metadataPtr, metadataLength)) return null;
    this.last = entry;
    return entry;
  }

  /** Caches a decoded peer (unless its id or value is too long); returns the entry either way. */
  put(idPtr: usize, idLength: usize, metadataPtr: usize, metadataLength: usize, peer: WorkloadInfo): PeerEntry {
    // Not cached: no copy of the (possibly huge) header bytes either.
    if (idLength == 0 || idLength > <usize>MAX_CACHED_ID_LENGTH || metadataLength > <usize>MAX_CACHED_METADATA_LENGTH) {
      return new PeerEntry(new ArrayBuffer(0), new ArrayBuffer(0), peer);
    }
    const entry = new PeerEntry(copyBytes(idPtr, idLength), copyBytes(metadataPtr, metadataLength), peer);
    const h = hashBytes(idPtr, idLength);
    if (!this.byHash.has(h)) {
      if (this.byHash.size >= this.capacity) {
        const drop = max(1, this.capacity / 4);
        for (let i = 0; i < drop; i++) this.byHash.delete(this.order[i]);
        this.order = this.order.slice(drop);
      }
      this.order.push(h);
    }
    this.byHash.set(h, entry);
    this.last = entry;
    return entry;
  }
}
