// Wires the plugin to the proxy-wasm ABI. Nothing here runs a host call: Envoy forbids them
// while the module starts, so all set-up happens in proxy_on_configure.
import { registerRootContext, RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import { proxy_on_tick as runTick } from "@solo-io/proxy-runtime/assembly/exports";
import { TelemetryRoot } from "./plugin/root";
import { tickEnded } from "./sdk/memory";

// Only the callbacks the plugin uses: Envoy does not call a callback the module does not
// export, and each exported one is a VM entry (proxy_on_response_body alone runs once per
// response data frame and again at end of stream; proxy_on_done once per stream).
export * from "@solo-io/proxy-runtime/assembly/malloc";
export {
  proxy_abi_version_0_2_1,
  proxy_on_vm_start,
  proxy_validate_configuration,
  proxy_on_configure,
  proxy_on_context_create,
  proxy_on_request_headers,
  proxy_on_response_headers,
  proxy_on_http_call_response, // the span reporter's Zipkin POSTs
  proxy_on_log,
  proxy_on_delete,
} from "@solo-io/proxy-runtime/assembly/exports";
export * from "./sdk/network"; // L4 callbacks the SDK lacks

// The timer's garbage is collected too (sdk/memory.ts): the end of a tick is a safe point.
export function proxy_on_tick(root_context_id: u32): void {
  runTick(root_context_id);
  tickEnded();
}

// The default root context ("") serves any root_id (Istio pluginName) not registered by name.
registerRootContext((context_id: u32): RootContext => new TelemetryRoot(context_id), "");
