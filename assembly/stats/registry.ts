// Metric ids cached by label tuple, as Istio's stats plugin did: a tuple's metrics are defined
// once (define_metric on first sight) and every later request with the same labels only
// increments or records. The cache is bounded so a flood of distinct label values cannot grow
// the VM's memory without limit: past `maxSeries` tuples, requests go to one overflow series.
import { defineMetric, incrementMetric, MetricType } from "../sdk/host";
import { encodeTags } from "./names";

export class MetricFamily {
  constructor(
    public name: string,
    public type: MetricType,
  ) {}
}

// Joins the values of a tuple into its cache key. Sanitized values hold no control
// characters, so the separator cannot occur inside one.
const KEY_SEPARATOR = "\u0001";

export class SeriesCache {
  private ids: Map<string, StaticArray<i64>> = new Map();
  private overflowIds: StaticArray<i64> | null = null;
  /** Counts requests reported on the overflow series, so a cardinality explosion is visible. */
  private overflowCounterId: i64 = defineMetric(MetricType.Counter, "mesh_telemetry_series_overflow_total");

  constructor(
    readonly families: MetricFamily[],
    readonly labelNames: StaticArray<string>,
    readonly labelCount: i32,
    readonly maxSeries: i32,
  ) {}

  get size(): i32 {
    return this.ids.size;
  }

  /** Metric ids, one per family (-1 where the host refused), for sanitized label values. */
  resolve(values: StaticArray<string>): StaticArray<i64> {
    const key = values.join(KEY_SEPARATOR);
    if (this.ids.has(key)) return this.ids.get(key);
    if (this.ids.size >= this.maxSeries) {
      if (this.overflowCounterId >= 0) incrementMetric(<u32>this.overflowCounterId, 1);
      let ids = this.overflowIds;
      if (ids === null) {
        const overflow = new StaticArray<string>(this.labelCount);
        for (let i = 0; i < this.labelCount; i++) overflow[i] = "overflow";
        ids = this.define(overflow);
        this.overflowIds = ids;
      }
      return ids;
    }
    const ids = this.define(values);
    this.ids.set(key, ids);
    return ids;
  }

  private define(values: StaticArray<string>): StaticArray<i64> {
    const tags = encodeTags(this.labelNames, values, this.labelCount);
    const families = this.families;
    const ids = new StaticArray<i64>(families.length);
    for (let i = 0; i < families.length; i++) {
      ids[i] = defineMetric(families[i].type, tags + families[i].name);
    }
    return ids;
  }
}
