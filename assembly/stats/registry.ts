// Metric ids cached by label tuple, as Istio's stats plugin did: a tuple's metrics are defined
// once (define_metric on first sight) and every later request with the same labels only
// increments or records. The cache is bounded so a flood of distinct label values cannot grow
// the VM's memory without limit.
import { defineMetric, MetricType } from "../sdk/host";

export class MetricFamily {
  constructor(
    public name: string,
    public type: MetricType,
  ) {}
}

export class SeriesCache {
  private ids: Map<string, StaticArray<i64>> = new Map();
  /** Tuples refused because the cache was full; they were reported on the overflow series. */
  overflows: u64 = 0;
  private overflowIds: StaticArray<i64> | null = null;

  constructor(
    readonly families: MetricFamily[],
    readonly maxSeries: i32,
    private overflowTags: string,
  ) {}

  get size(): i32 {
    return this.ids.size;
  }

  /**
   * Metric ids (one per family, -1 where the host refused) for an encoded tag prefix as built
   * by encodeTags.
   */
  resolve(tags: string): StaticArray<i64> {
    if (this.ids.has(tags)) return this.ids.get(tags);
    if (this.ids.size >= this.maxSeries) {
      this.overflows++;
      let ids = this.overflowIds;
      if (ids === null) {
        ids = this.define(this.overflowTags);
        this.overflowIds = ids;
      }
      return ids;
    }
    const ids = this.define(tags);
    this.ids.set(tags, ids);
    return ids;
  }

  private define(tags: string): StaticArray<i64> {
    const families = this.families;
    const ids = new StaticArray<i64>(families.length);
    for (let i = 0; i < families.length; i++) {
      ids[i] = defineMetric(families[i].type, tags + families[i].name);
    }
    return ids;
  }
}
