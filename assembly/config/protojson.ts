// The protobuf JSON mapping, as Istio's stats filter reads its PluginConfig (Envoy converts the
// filter's JSON to the proto message): a field may be named in proto form or in lowerCamelCase
// (`tags_to_remove` or `tagsToRemove`), `null` means the field's default, a bool may be given as
// the string "true"/"false", an integer as a decimal string, an enum by name or by number.
// Anything else of the wrong shape (an object where a string belongs, "yes" for a bool) is
// refused by protobuf too, so the caller refuses it naming the field.
import { JsonKind, JsonValue, decimalValue } from "./json";

/** The proto field name of a JSON member name: `tagsToRemove` -> `tags_to_remove`. */
export function protoFieldName(key: string): string {
  let upper = false;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) {
      upper = true;
      break;
    }
  }
  if (!upper) return key;
  let out = "";
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) out += "_" + String.fromCharCode(c + 0x20);
    else out += String.fromCharCode(c);
  }
  return out;
}

/** 1 true, 0 false, -1 neither (a JSON bool, or the string "true" / "false"). */
export function protoBool(v: JsonValue): i32 {
  if (v.kind == JsonKind.Bool) return v.boolValue ? 1 : 0;
  if (v.kind == JsonKind.String) {
    if (v.stringValue == "true") return 1;
    if (v.stringValue == "false") return 0;
  }
  return -1;
}

/** An integer given as a JSON number or a decimal string; NaN when it is neither. */
export function protoInteger(v: JsonValue): f64 {
  let n: f64 = NaN;
  if (v.kind == JsonKind.Number) n = v.numberValue;
  else if (v.kind == JsonKind.String && isDecimal(v.stringValue)) n = decimalValue(v.stringValue, 0, v.stringValue.length);
  return n == Math.floor(n) ? n : NaN;
}

/** The number of an enum value given by name (its index in `names`) or by number; -1 when unknown. */
export function protoEnum(v: JsonValue, names: string[]): i32 {
  if (v.kind == JsonKind.String) return names.indexOf(v.stringValue);
  if (v.kind == JsonKind.Number) {
    const n = v.numberValue;
    if (n == Math.floor(n) && n >= 0 && n < <f64>names.length) return <i32>n;
  }
  return -1;
}

function isDecimal(s: string): bool {
  let i = s.length > 0 && s.charCodeAt(0) == 0x2d ? 1 : 0;
  if (i >= s.length || s.length > 20) return false;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}
