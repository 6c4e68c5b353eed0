// Metric ids cached by label tuple, as Istio's stats plugin did: a tuple's metrics are defined
// once (define_metric on first sight) and every later request with the same labels only
// increments or records. A tuple is keyed by the interned ids of its values (SeriesKey), so a
// request builds a short key, not its labels' text; the text is built only to define a new
// tuple. Bounded so a flood of distinct label values cannot grow the VM's memory without limit:
// past `maxSeries` tuples (or when an intern table is full), requests go to one overflow series.
import { defineMetric, incrementMetric, MetricType } from "../sdk/host";
import { encodeTags } from "./names";
import { SeriesPlan } from "./plan";

/** A label tuple as small integers, turned into a compact map key. */
export class SeriesKey {
  private parts: StaticArray<u32>;
  private count: i32 = 0;
  /** Set when a part could not be interned: the tuple belongs on the overflow series. */
  overflow: bool = false;

  constructor(capacity: i32) {
    this.parts = new StaticArray<u32>(capacity);
  }

  reset(): void {
    this.count = 0;
    this.overflow = false;
  }

  /** Adds an id; a negative one (a full intern table) marks the key as overflowing. */
  add(id: i32): void {
    if (id < 0) this.overflow = true;
    if (this.count < this.parts.length) this.parts[this.count++] = <u32>id;
  }

  /** Two UTF-16 code units per part: one small allocation, hashed by the map. */
  text(): string {
    const n = this.count;
    const s = changetype<string>(__new(<usize>n << 2, idof<string>()));
    const p = changetype<usize>(s);
    for (let i = 0; i < n; i++) store<u32>(p + (<usize>i << 2), this.parts[i]);
    return s;
  }
}

export class SeriesCache {
  private ids: Map<string, StaticArray<i64>> = new Map();
  private overflowIds: StaticArray<i64> | null = null;
  /** Counts requests reported on the overflow series, so a cardinality explosion is visible. */
  private overflowCounterId: i64 = defineMetric(MetricType.Counter, "mesh_telemetry_series_overflow_total");

  constructor(
    readonly plan: SeriesPlan,
    readonly maxSeries: i32,
  ) {}

  /** Metric ids of a tuple seen before, or null. */
  get(key: string): StaticArray<i64> | null {
    return this.ids.has(key) ? this.ids.get(key) : null;
  }

  /** True when a new tuple would go to the overflow series. */
  get full(): bool {
    return this.ids.size >= this.maxSeries;
  }

  /**
   * Defines the metrics of a new tuple from its sanitized label values (one per slot of the
   * plan) and caches them under `key`; returns one id per family (-1 where dropped or refused).
   */
  add(key: string, values: StaticArray<string>): StaticArray<i64> {
    if (this.full) return this.overflow(values.length);
    const ids = this.define(values);
    this.ids.set(key, ids);
    return ids;
  }

  /** The overflow series' ids (defined on first use); counts one overflowing report. */
  overflow(slotCount: i32): StaticArray<i64> {
    if (this.overflowCounterId >= 0) incrementMetric(<u32>this.overflowCounterId, 1);
    let ids = this.overflowIds;
    if (ids === null) {
      const overflow = new StaticArray<string>(slotCount);
      for (let i = 0; i < slotCount; i++) overflow[i] = "overflow";
      ids = this.define(overflow);
      this.overflowIds = ids;
    }
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
