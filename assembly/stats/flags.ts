// Envoy's response flags as Istio reports them: the short codes of the bits set in the
// `response.flags` attribute, comma-joined, or "-" when none is set. Bit i is Envoy's
// CoreResponseFlag i.
const SHORT_CODES: StaticArray<string> = [
  "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
  "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR", "UDO",
];

export function responseFlagsString(flags: i64): string {
  if (flags == 0) return "-";
  let out = "";
  for (let i = 0; i < SHORT_CODES.length; i++) {
    if ((flags & (<i64>1 << i)) != 0) {
      if (out.length > 0) out += ",";
      out += SHORT_CODES[i];
    }
  }
  return out.length > 0 ? out : "-";
}
