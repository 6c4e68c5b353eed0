// Istio's stat-name encoding for labels carried through the proxy-wasm metric ABI, which has no
// tags: `tag1=.=value1;.;tag2=.=value2;.;istio_<metric>`. Envoy's stats_tags regexes of the form
// `(tag=\.=(.*?);\.;)` turn each pair back into a Prometheus label.

export const VALUE_SEPARATOR = "=.=";
export const FIELD_SEPARATOR = ";.;";

/**
 * Makes a label value safe inside an encoded name. The separators `=.=` and `;.;` would end the
 * value early or inject another label, so their dots become `_`; control characters, which
 * Envoy's Prometheus output cannot carry, become `_` too. Valid Unicode passes through.
 */
export function sanitizeLabelValue(value: string): string {
  let needsWork = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c == 0x7f || (c == 0x2e && isSeparatorDot(value, i))) {
      needsWork = true;
      break;
    }
  }
  if (!needsWork) return value;
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c == 0x7f) out += "_";
    else if (c == 0x2e && isSeparatorDot(value, i)) out += "_";
    else out += String.fromCharCode(c);
  }
  return out;
}

// True when the dot at `i` sits between two `=` or two `;` and so forms a separator, counting the
// `=` that precedes every value and the `;` that follows it.
function isSeparatorDot(value: string, i: i32): bool {
  const before = i > 0 ? value.charCodeAt(i - 1) : 0x3d;
  const after = i + 1 < value.length ? value.charCodeAt(i + 1) : 0x3b;
  return (before == 0x3d && after == 0x3d) || (before == 0x3b && after == 0x3b);
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
  return parts.join("");
}
