// Decoded peers keyed by x-envoy-peer-metadata-id, so a peer's header is decoded once, not per
// request. Bounded like Istio's (500 entries; when full, the oldest quarter is dropped).
import { WorkloadInfo } from "./workload";

export class PeerCache {
  private byId: Map<string, WorkloadInfo> = new Map();
  private order: string[] = [];

  constructor(readonly capacity: i32 = 500) {}

  get size(): i32 {
    return this.byId.size;
  }

  get(id: string): WorkloadInfo | null {
    return this.byId.has(id) ? this.byId.get(id) : null;
  }

  put(id: string, peer: WorkloadInfo): void {
    if (this.byId.has(id)) {
      this.byId.set(id, peer);
      return;
    }
    if (this.byId.size >= this.capacity) {
      const drop = max(1, this.capacity / 4);
      for (let i = 0; i < drop; i++) this.byId.delete(this.order[i]);
      this.order = this.order.slice(drop);
    }
    this.byId.set(id, peer);
    this.order.push(id);
  }
}
