// Decoded peers keyed by x-envoy-peer-metadata-id, so a peer's header is decoded once, not per
// request. Bounded like Istio's (500 entries; when full, the oldest quarter is dropped), and in
// bytes: ids and values too long to be a real sidecar's are not cached. An entry answers only
// for the exact metadata value it was decoded from, so a caller cannot poison a real peer's
// id with a different claim.
import { WorkloadInfo } from "./workload";

/** Longest id and metadata value cached (a real sidecar's are about 100 and 400 bytes). */
export const MAX_CACHED_ID_LENGTH = 256;
export const MAX_CACHED_METADATA_LENGTH = 2048;

class Entry {
  constructor(
    readonly metadata: string,
    readonly peer: WorkloadInfo,
  ) {}
}

export class PeerCache {
  private byId: Map<string, Entry> = new Map();
  private order: string[] = [];

  constructor(readonly capacity: i32 = 500) {}

  get size(): i32 {
    return this.byId.size;
  }

  /** The peer cached for `id`, if it was decoded from exactly `metadata`. */
  get(id: string, metadata: string): WorkloadInfo | null {
    if (!this.byId.has(id)) return null;
    const entry = this.byId.get(id);
    return entry.metadata == metadata ? entry.peer : null;
  }

  put(id: string, metadata: string, peer: WorkloadInfo): void {
    if (id.length == 0 || id.length > MAX_CACHED_ID_LENGTH || metadata.length > MAX_CACHED_METADATA_LENGTH) return;
    if (this.byId.has(id)) {
      this.byId.set(id, new Entry(metadata, peer));
      return;
    }
    if (this.byId.size >= this.capacity) {
      const drop = max(1, this.capacity / 4);
      for (let i = 0; i < drop; i++) this.byId.delete(this.order[i]);
      this.order = this.order.slice(drop);
    }
    this.byId.set(id, new Entry(metadata, peer));
    this.order.push(id);
  }
}
