// Durations in configuration: protobuf JSON form ("5s", "1.5s") or one Go-style unit.
import { decimalValue } from "./json";

/**
 * A protobuf JSON Duration as Istio writes it ("5s", "1.5s") or Go-style with one unit ("500ms",
 * "2m", "1h"), in whole milliseconds; -1 when malformed.
 */
export function parseDurationMs(text: string): f64 {
  let i = 0;
  while (i < text.length && ((text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) || text.charCodeAt(i) == 0x2e)) i++;
  if (i == 0) return -1;
  const number = text.substring(0, i);
  if (number.indexOf(".") != number.lastIndexOf(".") || number.startsWith(".") || number.endsWith(".")) return -1;
  const n = decimalValue(number, 0, number.length);
  const unit = text.substring(i);
  let scale: f64 = -1;
  if (unit == "ms") scale = 1;
  else if (unit == "s") scale = 1000;
  else if (unit == "m") scale = 60000;
  else if (unit == "h") scale = 3600000;
  if (scale < 0) return -1;
  return Math.floor(n * scale);
}
