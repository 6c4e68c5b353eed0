// The floor cost of an AssemblyScript filter in Envoy's V8: the same SDK, build options and
// exported callbacks as the plugin (assembly/index.ts, asconfig.json's release target), and a
// root context whose streams do nothing. Envoy calls only the callbacks a module exports; each
// stream still gets a context object, and, because the `minimal` runtime only collects when
// asked, it collects every 128 streams exactly as the plugin does (assembly/sdk/memory.ts).
// Per request it makes no host call. Built by bench/run.ts into build/bench/empty-filter.wasm.
// The probe (probe.ts) exports every SDK callback; with no calls it prices the VM entries the
// plugin avoids by exporting only these.
import { Context, registerRootContext, RootContext } from "@solo-io/proxy-runtime/assembly/runtime";

export * from "@solo-io/proxy-runtime/assembly/malloc";
export {
  proxy_abi_version_0_2_1,
  proxy_on_vm_start,
  proxy_validate_configuration,
  proxy_on_configure,
  proxy_on_tick,
  proxy_on_context_create,
  proxy_on_request_headers,
  proxy_on_response_headers,
  proxy_on_http_call_response,
  proxy_on_log,
  proxy_on_delete,
} from "@solo-io/proxy-runtime/assembly/exports";

const STREAMS_PER_COLLECTION: u32 = 128;
let streamsSinceCollection: u32 = 0;

class EmptyStream extends Context {
  onDelete(): void {
    if (++streamsSinceCollection < STREAMS_PER_COLLECTION) return;
    streamsSinceCollection = 0;
    __collect();
  }
}

class EmptyRoot extends RootContext {
  // The SDK's default reads the configuration (one host call, at configure time only); nothing
  // to read here.
  onConfigure(_configuration_size: u32): bool {
    return true;
  }

  createContext(context_id: u32): Context {
    return new EmptyStream(context_id, this);
  }
}

registerRootContext((context_id: u32): RootContext => new EmptyRoot(context_id), "");
