// Network-filter (L4) callbacks of ABI 0.2.1, which @solo-io/proxy-runtime 0.1.8 does not export.
// They dispatch to the SDK's Context methods (onNewConnection, onDownstreamData, ...), so a
// stream context overrides those as it would any HTTP callback.
import { getContext } from "@solo-io/proxy-runtime/assembly/runtime";

export function proxy_on_new_connection(context_id: u32): u32 {
  return getContext(context_id).onNewConnection();
}

export function proxy_on_downstream_data(context_id: u32, data_size: u32, end_of_stream: u32): u32 {
  return getContext(context_id).onDownstreamData(data_size, end_of_stream != 0);
}

export function proxy_on_upstream_data(context_id: u32, data_size: u32, end_of_stream: u32): u32 {
  return getContext(context_id).onUpstreamData(data_size, end_of_stream != 0);
}

export function proxy_on_downstream_connection_close(context_id: u32, peer_type: u32): void {
  getContext(context_id).onDownstreamConnectionClose(peer_type);
}

export function proxy_on_upstream_connection_close(context_id: u32, peer_type: u32): void {
  getContext(context_id).onUpstreamConnectionClose(peer_type);
}
