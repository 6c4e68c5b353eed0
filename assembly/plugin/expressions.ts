// The host side of attribute expressions (assembly/expr): attributes are read from Envoy per
// evaluation, node metadata once, when the configuration is compiled.
import { AttributeSource } from "../expr/ast";
import { ConstantResolver } from "../expr/parser";
import { getProperty, getPropertyString, propertyPath } from "../sdk/host";

export class HostAttributes extends AttributeSource {
  property(path: ArrayBuffer): ArrayBuffer | null {
    return getProperty(path);
  }
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
