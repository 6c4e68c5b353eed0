// Every header name the plugin reads or writes, encoded once, and the one list of request
// headers read per request (a single proxy_get_header_map_pairs call) with the index of each.

export const PEER_METADATA = String.UTF8.encode("x-envoy-peer-metadata");
export const PEER_METADATA_ID = String.UTF8.encode("x-envoy-peer-metadata-id");
export const REQUEST_ID = String.UTF8.encode("x-request-id");
export const TRACEPARENT = String.UTF8.encode("traceparent");
export const TRACESTATE = String.UTF8.encode("tracestate");
export const B3 = String.UTF8.encode("b3");
export const B3_TRACE_ID = String.UTF8.encode("x-b3-traceid");
export const B3_SPAN_ID = String.UTF8.encode("x-b3-spanid");
export const B3_PARENT_SPAN_ID = String.UTF8.encode("x-b3-parentspanid");
export const B3_SAMPLED = String.UTF8.encode("x-b3-sampled");
export const B3_FLAGS = String.UTF8.encode("x-b3-flags");

/** Index of each request header in REQUEST_HEADERS and in the request's HeaderSnapshot. */
export const enum H {
  PeerMetadata = 0,
  PeerMetadataId,
  Authority,
  ContentType,
  Method,
  Path,
  RequestId,
  Traceparent,
  Tracestate,
  B3,
  B3TraceId,
  B3SpanId,
  B3ParentSpanId,
  B3Sampled,
  B3Flags,
}

export const REQUEST_HEADERS: StaticArray<ArrayBuffer> = [
  PEER_METADATA,
  PEER_METADATA_ID,
  String.UTF8.encode(":authority"),
  String.UTF8.encode("content-type"),
  String.UTF8.encode(":method"),
  String.UTF8.encode(":path"),
  REQUEST_ID,
  TRACEPARENT,
  TRACESTATE,
  B3,
  B3_TRACE_ID,
  B3_SPAN_ID,
  B3_PARENT_SPAN_ID,
  B3_SAMPLED,
  B3_FLAGS,
];

/** The response headers the outbound side reads: the upstream's exchange answer and :status. */
export const enum R {
  PeerMetadata = 0,
  PeerMetadataId,
  Status,
}

export const RESPONSE_HEADERS: StaticArray<ArrayBuffer> = [PEER_METADATA, PEER_METADATA_ID, String.UTF8.encode(":status")];
