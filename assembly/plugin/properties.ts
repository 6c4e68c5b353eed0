// Envoy attribute paths, encoded once at start-up (an allocation, not a host call).
import { propertyPath } from "../sdk/host";

export const PLUGIN_ROOT_ID = propertyPath(["plugin_root_id"]);
export const LISTENER_DIRECTION = propertyPath(["xds", "listener_direction"]);
export const RESPONSE_CODE = propertyPath(["response", "code"]);

/** Envoy's config.core.v3.TrafficDirection values, as xds.listener_direction reports them. */
export const DIRECTION_OUTBOUND: i64 = 2;
