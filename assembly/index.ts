// Wires the plugin to the proxy-wasm ABI. Nothing here runs a host call: Envoy forbids them
// while the module starts, so all set-up happens in proxy_on_configure.
import { registerRootContext, RootContext } from "@solo-io/proxy-runtime/assembly/runtime";
import { TelemetryRoot } from "./plugin/root";

export * from "@solo-io/proxy-runtime/assembly/proxy"; // lifecycle and HTTP callbacks, malloc
export * from "./sdk/network"; // L4 callbacks the SDK lacks

// The default root context ("") serves any root_id (Istio pluginName) not registered by name.
registerRootContext((context_id: u32): RootContext => new TelemetryRoot(context_id), "");
