// Zipkin v2 JSON for the spans the plugin reports (POST /api/v2/spans takes a JSON array of
// these). Pure string building, so it is unit tested without a proxy.
import { u128ToHex, u64ToHex } from "./hex";
import { joinStrings } from "../text/join";
import { Span, SpanKind } from "./span";

/** One span as a Zipkin v2 JSON object. */
export function spanJson(s: Span): string {
  const traceId = s.traceId64 && s.traceIdHigh == 0 ? u64ToHex(s.traceIdLow) : u128ToHex(s.traceIdHigh, s.traceIdLow);
  const parts: string[] = [];
  parts.push('{"traceId":"' + traceId + '","id":"' + u64ToHex(s.id) + '"');
  if (s.parentId != 0) parts.push(',"parentId":"' + u64ToHex(s.parentId) + '"');
  parts.push(',"kind":"' + (s.kind == SpanKind.Client ? "CLIENT" : "SERVER") + '"');
  parts.push(',"name":' + jsonString(s.name));
  parts.push(',"timestamp":' + (s.startNs / 1000).toString() + ',"duration":' + max<u64>(s.durationNs / 1000, 1).toString());
  parts.push(',"localEndpoint":{"serviceName":' + jsonString(s.serviceName));
  if (s.localIpv4.length > 0) parts.push(',"ipv4":' + jsonString(s.localIpv4));
  parts.push("}");
  if (s.remoteIpv4.length > 0) {
    parts.push(',"remoteEndpoint":{"ipv4":' + jsonString(s.remoteIpv4));
    if (s.remotePort > 0) parts.push(',"port":' + s.remotePort.toString());
    parts.push("}");
  }
  if (s.debug) parts.push(',"debug":true');
  if (s.tagKeys.length > 0) {
    parts.push(',"tags":{');
    for (let i = 0; i < s.tagKeys.length; i++) {
      if (i > 0) parts.push(",");
      parts.push(jsonString(s.tagKeys[i]) + ":" + jsonString(s.tagValues[i]));
    }
    parts.push("}");
  }
  parts.push("}");
  return joinStrings(parts, "");
}

const HEX_DIGITS = "0123456789abcdef";

/** A JSON string literal: quotes, backslashes and control characters escaped. */
export function jsonString(value: string): string {
  let plain = true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c == 0x22 || c == 0x5c || (c >= 0xd800 && c <= 0xdfff)) {
      plain = false;
      break;
    }
  }
  if (plain) return '"' + value + '"';
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c == 0x22) out += '\\"';
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20) out += "\\u00" + String.fromCharCode(c < 0x10 ? 0x30 : 0x31) + HEX_DIGITS.charAt(c & 0xf);
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < value.length && value.charCodeAt(i + 1) >= 0xdc00 && value.charCodeAt(i + 1) <= 0xdfff) {
      out += String.fromCharCode(c, value.charCodeAt(i + 1)); // a valid surrogate pair
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) out += "\ufffd"; // a lone surrogate is not valid UTF-8
    else out += String.fromCharCode(c);
  }
  return out + '"';
}
