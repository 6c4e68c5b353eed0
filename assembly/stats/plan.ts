// The label layout of each metric family, worked out once per configuration from Istio's
// standard labels and the metrics[] overrides. Per request the plugin fills one value array:
// the standard labels first, then one slot per entry expression; each family reads its
// labels from slots of that array. So every expression is evaluated once per request, and the
// whole array is the metric-id cache key.
import { Expr } from "../expr/ast";
import { LABEL_NAMES } from "./labels";

// The plan's inputs, as config/metrics.ts parses them from metrics[] and definitions[].
export const enum DefinitionType {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}

export class MetricOverride {
  /** "" applies to every metric. */
  name: string = "";
  tags: string[] = [];
  expressions: Expr[] = [];
  tagsToRemove: string[] = [];
  drop: bool = false;
}

export class MetricDefinition {
  constructor(
    public name: string,
    public value: Expr,
    public type: DefinitionType,
  ) {}
}

export class FamilyPlan {
  /** Label names in the order they are encoded, and the value slot of each. */
  labelNames: string[] = [];
  slots: i32[] = [];
  dropped: bool = false;

  constructor(
    /** The configuration's name for it, e.g. "requests_total". */
    public name: string,
    /** 0 counter, 1 gauge, 2 histogram (the proxy-wasm metric types). */
    public type: i32,
    /** Value expression of a custom definition; null for the standard families. */
    public value: Expr | null,
  ) {}

  get statName(): string {
    return "istio_" + this.name;
  }
}

export class SeriesPlan {
  /** Number of standard labels (25 for HTTP, 23 for TCP): slots 0..standardCount-1. */
  standardCount: i32 = 0;
  /** Override expressions; expression i fills slot standardCount + i. */
  expressions: Expr[] = [];
  families: FamilyPlan[] = [];
  error: string = "";

  get slotCount(): i32 {
    return this.standardCount + this.expressions.length;
  }
}

/**
 * Builds the plan for families `names` (types `types`) plus the custom `definitions`, applying
 * `overrides` in order: drop, tags_to_remove, and dimensions (entry a standard label in
 * place, or add a label after the standard ones, sorted by name, as Istio does).
 */
export function planSeries(
  standardCount: i32,
  names: string[],
  types: i32[],
  definitions: MetricDefinition[],
  overrides: MetricOverride[],
): SeriesPlan {
  const plan = new SeriesPlan();
  plan.standardCount = standardCount;
  for (let i = 0; i < names.length; i++) plan.families.push(new FamilyPlan(names[i], types[i], null));
  for (let i = 0; i < definitions.length; i++) {
    plan.families.push(new FamilyPlan(definitions[i].name, <i32>definitions[i].type, definitions[i].value));
  }
  for (let f = 0; f < plan.families.length; f++) {
    const family = plan.families[f];
    // Per family: label name -> slot, standard labels first.
    const tags: string[] = [];
    const slots: i32[] = [];
    // As in Istio, a custom definition has only the labels metrics[] entries add to it.
    const custom = family.value !== null;
    const ownStandard = custom ? 0 : standardCount;
    for (let i = 0; i < ownStandard; i++) {
      tags.push(LABEL_NAMES[i]);
      slots.push(i);
    }
    for (let o = 0; o < overrides.length; o++) {
      const entry = overrides[o];
      if (entry.name.length > 0 && entry.name != family.name) continue;
      if (entry.drop) family.dropped = true;
      for (let d = 0; d < entry.tags.length; d++) {
        const slot = slotOf(plan, entry.expressions[d]);
        const at = tags.indexOf(entry.tags[d]);
        if (at >= 0) slots[at] = slot;
        else {
          tags.push(entry.tags[d]);
          slots.push(slot);
        }
      }
      for (let r = 0; r < entry.tagsToRemove.length; r++) {
        const tag = entry.tagsToRemove[r];
        const at = tags.indexOf(tag);
        if (at < 0 && !isKnownTag(tag, overrides)) {
          plan.error = "field 'metrics[" + o.toString() + "].tags_to_remove': unknown label '" + tag + "'";
          return plan;
        }
        if (at >= 0) {
          tags.splice(at, 1);
          slots.splice(at, 1);
        }
      }
    }
    orderCustomTags(tags, slots, ownStandard);
    family.labelNames = tags;
    family.slots = slots;
    const clash = suffixClash(tags);
    if (clash.length > 0) {
      plan.error = "field 'metrics': in " + family.statName + ", " + clash;
      return plan;
    }
  }
  return plan;
}

// Envoy extracts each label with the regex `(<tag>=\.=(.*?);\.;)`, which also matches where
// <tag> is the end of a longer label's name (`d` inside `destination_workload=.=`), and the
// name comes out mangled. Refuse such pairs at configure time.
function suffixClash(tags: string[]): string {
  for (let i = 0; i < tags.length; i++) {
    for (let j = 0; j < tags.length; j++) {
      if (i != j && tags[j].length > tags[i].length && tags[j].endsWith(tags[i])) {
        return "label '" + tags[i] + "' is the end of label '" + tags[j] + "', which Envoy's tag extraction cannot tell apart; choose another name";
      }
    }
  }
  return "";
}

// The same expression object used by several families gets one slot.
function slotOf(plan: SeriesPlan, expr: Expr): i32 {
  for (let i = 0; i < plan.expressions.length; i++) {
    if (plan.expressions[i] === expr) return plan.standardCount + i;
  }
  plan.expressions.push(expr);
  return plan.standardCount + plan.expressions.length - 1;
}

// Any standard label counts, so one entry can remove an HTTP-only label from all metrics.
function isKnownTag(tag: string, overrides: MetricOverride[]): bool {
  if (LABEL_NAMES.includes(tag)) return true;
  for (let o = 0; o < overrides.length; o++) if (overrides[o].tags.includes(tag)) return true;
  return false;
}

// Standard labels keep Istio's order; added labels follow, sorted by name (insertion sort:
// there are a handful).
function orderCustomTags(tags: string[], slots: i32[], standardCount: i32): void {
  let firstCustom = 0;
  while (firstCustom < tags.length && isStandard(tags[firstCustom], standardCount)) firstCustom++;
  for (let i = firstCustom + 1; i < tags.length; i++) {
    const tag = tags[i];
    const slot = slots[i];
    let j = i - 1;
    while (j >= firstCustom && tags[j] > tag) {
      tags[j + 1] = tags[j];
      slots[j + 1] = slots[j];
      j--;
    }
    tags[j + 1] = tag;
    slots[j + 1] = slot;
  }
}

function isStandard(tag: string, standardCount: i32): bool {
  for (let i = 0; i < standardCount; i++) if (LABEL_NAMES[i] == tag) return true;
  return false;
}
