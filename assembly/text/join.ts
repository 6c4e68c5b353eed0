// String joins that allocate once. The release build's shrink level makes the standard
// library's Array#join and StaticArray#join concatenate pairwise (quadratic time and garbage:
// 50 KB per request for the metric-id key alone), so everything the plugin joins goes here.
import { joinStringArray } from "~lib/util/string";

export function joinStrings(parts: string[], separator: string): string {
  return joinStringArray(parts.dataStart, parts.length, separator);
}

export function joinStaticStrings(parts: StaticArray<string>, separator: string): string {
  return joinStringArray(changetype<usize>(parts), parts.length, separator);
}
