// Metric ids cached by label tuple, as Istio's stats plugin did: a tuple's metrics are defined
// once (define_metric on first sight) and every later request with the same labels only
// increments or records. The cache is bounded so a flood of distinct label values cannot grow
// the VM's memory without limit: past `maxSeries` tuples, requests go to one overflow series.
import { defineMetric, incrementMetric, MetricType } from "../sdk/host";
import { encodeTags } from "./names";
import { SeriesPlan } from "./plan";
import { joinStaticStrings } from "../text/join";

// Joins the values of a tuple into its cache key. Sanitized values hold no control
// characters, so the separator cannot occur inside one.
const KEY_SEPARATOR = "\u0001";

export class SeriesCache {
  private ids: Map<string, StaticArray<i64>> = new Map();
  private overflowIds: StaticArray<i64> | null = null;
  /** Counts requests reported on the overflow series, so a cardinality explosion is visible. */
  private overflowCounterId: i64 = defineMetric(MetricType.Counter, "mesh_telemetry_series_overflow_total");

  constructor(
    readonly plan: SeriesPlan,
    readonly maxSeries: i32,
  ) {}

  get size(): i32 {
    return this.ids.size;
  }

  /**
   * Metric ids, one per family of the plan (-1 where dropped or refused by the host), for the
   * sanitized values of every slot of the plan.
   */
  resolve(values: StaticArray<string>): StaticArray<i64> {
    const key = joinStaticStrings(values, KEY_SEPARATOR);
    if (this.ids.has(key)) return this.ids.get(key);
    if (this.ids.size >= this.maxSeries) {
      if (this.overflowCounterId >= 0) incrementMetric(<u32>this.overflowCounterId, 1);
      let ids = this.overflowIds;
      if (ids === null) {
        const overflow = new StaticArray<string>(values.length);
        for (let i = 0; i < values.length; i++) overflow[i] = "overflow";
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
    const families = this.plan.families;
    const ids = new StaticArray<i64>(families.length);
    for (let f = 0; f < families.length; f++) {
      const family = families[f];
      if (family.dropped) {
        ids[f] = -1;
        continue;
      }
      const tagValues = new StaticArray<string>(family.slots.length);
      for (let i = 0; i < family.slots.length; i++) tagValues[i] = values[family.slots[i]];
      ids[f] = defineMetric(<MetricType>family.type, encodeTags(family.labelNames, tagValues, tagValues.length) + family.statName);
    }
    return ids;
  }
}
