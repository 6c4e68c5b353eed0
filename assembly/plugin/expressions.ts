// The host side of attribute expressions (assembly/expr): attributes are read from Envoy per
// evaluation, node metadata once, when the configuration is compiled.
import { AttributeSource } from "../expr/ast";
import { ConstantResolver } from "../expr/parser";
import { getProperty, getPropertyString, propertyPath } from "../sdk/host";
import { peerField, WorkloadInfo } from "../peer/workload";

const UPSTREAM_PEER = String.UTF8.encode("filter_state\0upstream_peer\0");
const DOWNSTREAM_PEER = String.UTF8.encode("filter_state\0downstream_peer\0");

/**
 * Envoy's attributes, except Istio's `filter_state.upstream_peer.<field>` and
 * `downstream_peer.<field>`: Istio's peer-metadata filter writes those, upstream Envoy has no
 * such filter, so they are answered from the peers this plugin's own exchange found (set by the
 * caller for the request being reported; null when there is none).
 */
export class HostAttributes extends AttributeSource {
  upstreamPeer: WorkloadInfo | null = null;
  downstreamPeer: WorkloadInfo | null = null;

  property(path: ArrayBuffer): ArrayBuffer | null {
    if (startsWith(path, UPSTREAM_PEER)) return this.peerProperty(this.upstreamPeer, path, UPSTREAM_PEER.byteLength);
    if (startsWith(path, DOWNSTREAM_PEER)) return this.peerProperty(this.downstreamPeer, path, DOWNSTREAM_PEER.byteLength);
    return getProperty(path);
  }

  private peerProperty(peer: WorkloadInfo | null, path: ArrayBuffer, prefix: i32): ArrayBuffer | null {
    if (peer === null) return null;
    const value = peerField(peer, String.UTF8.decodeUnsafe(changetype<usize>(path) + <usize>prefix, <usize>(path.byteLength - prefix)));
    return value === null ? null : String.UTF8.encode(value);
  }
}

function startsWith(path: ArrayBuffer, prefix: ArrayBuffer): bool {
  const n = prefix.byteLength;
  // Most paths do not start with 'f': one byte decides.
  if (path.byteLength <= n || load<u8>(changetype<usize>(path)) != 0x66) return false;
  return memory.compare(changetype<usize>(path), changetype<usize>(prefix), n) == 0;
}

export const HOST_ATTRIBUTES = new HostAttributes();

export class NodeMetadataConstants extends ConstantResolver {
  nodeMetadata(key: string): string | null {
    return getPropertyString(propertyPath(["xds", "node", "metadata", key]));
  }

  nodeMetadataPath(keys: string[]): string | null {
    const path = ["xds", "node", "metadata"];
    for (let i = 0; i < keys.length; i++) path.push(keys[i]);
    return getPropertyString(propertyPath(path));
  }
}
