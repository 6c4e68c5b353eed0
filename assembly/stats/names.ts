// Istio's stat-name encoding for labels carried through the proxy-wasm metric ABI, which has no
// tags: `tag1=.=value1;.;tag2=.=value2;.;istio_<metric>`. Envoy's stats_tags regexes of the form
// `(tag=\.=(.*?);\.;)` turn each pair back into a Prometheus label.
import { joinStrings } from "../text/join";

export const VALUE_SEPARATOR = "=.=";
export const FIELD_SEPARATOR = ";.;";

/** Longer label values are cut (in UTF-16 code units): a header cannot make a huge stat name. */
export const MAX_LABEL_VALUE_LENGTH = 256;

/**
 * Makes a label value safe inside an encoded name, in one linear pass. The separators `=.=` and
 * `;.;` would end the value early or inject another label, so their dots become `_`; control
 * characters, which Envoy's Prometheus output cannot carry, become `_`; an unpaired surrogate
 * (what invalid UTF-8 decodes to) becomes U+FFFD, since it would be written out as invalid
 * UTF-8 and Prometheus would refuse the whole scrape. Values are cut at MAX_LABEL_VALUE_LENGTH.
 */
export function sanitizeLabelValue(value: string): string {
  const length = min(value.length, MAX_LABEL_VALUE_LENGTH);
  let firstChange = length;
  for (let i = 0; i < length; i++) {
    if (replacementAt(value, i, length) != 0) {
      firstChange = i;
      break;
    }
  }
  if (firstChange == length) return length == value.length ? value : value.substring(0, length);
  const units = new Array<i32>(length);
  for (let i = 0; i < length; i++) {
    const r = replacementAt(value, i, length);
    units[i] = r != 0 ? r : value.charCodeAt(i);
  }
  return String.fromCharCodes(units);
}

// The code unit that replaces value[i] (the value being cut at `length`), or 0 to keep it.
function replacementAt(value: string, i: i32, length: i32): i32 {
  const c = value.charCodeAt(i);
  if (c < 0x20 || c == 0x7f) return 0x5f;
  if (c == 0x2e) {
    // A dot between two `=` or two `;` forms a separator, counting the `=` that precedes every
    // value and the `;` that follows it.
    const before = i > 0 ? value.charCodeAt(i - 1) : 0x3d;
    const after = i + 1 < length ? value.charCodeAt(i + 1) : 0x3b;
    return (before == 0x3d && after == 0x3d) || (before == 0x3b && after == 0x3b) ? 0x5f : 0;
  }
  if (c >= 0xd800 && c <= 0xdbff) {
    const next = i + 1 < length ? value.charCodeAt(i + 1) : 0;
    return next >= 0xdc00 && next <= 0xdfff ? 0 : 0xfffd;
  }
  if (c >= 0xdc00 && c <= 0xdfff) {
    const previous = i > 0 ? value.charCodeAt(i - 1) : 0;
    return previous >= 0xd800 && previous <= 0xdbff ? 0 : 0xfffd;
  }
  return 0;
}

/**
 * The encoded label part of a stat name for the first `count` labels, ending with a field
 * separator so a metric name can be appended. Values must already be sanitized.
 */
export function encodeTags(names: string[], values: StaticArray<string>, count: i32): string {
  let parts = new Array<string>(count * 4);
  for (let i = 0; i < count; i++) {
    parts[i * 4] = names[i];
    parts[i * 4 + 1] = VALUE_SEPARATOR;
    parts[i * 4 + 2] = values[i];
    parts[i * 4 + 3] = FIELD_SEPARATOR;
  }
  return joinStrings(parts, "");
}
