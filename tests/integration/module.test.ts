// The release module's ABI surface: what Envoy checks when it loads it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { PLUGIN_WASM } from "../harness/envoy.ts";

const module = new WebAssembly.Module(readFileSync(PLUGIN_WASM));

test("exports the proxy-wasm 0.2.x ABI marker, memory, malloc and the HTTP and L4 callbacks", () => {
  const exports = WebAssembly.Module.exports(module).map((e) => e.name);
  assert.ok(exports.some((n) => /^proxy_abi_version_0_2_\d$/.test(n)), `no ABI marker in ${exports}`);
  for (const name of [
    "memory", "malloc", "_initialize", "proxy_on_configure", "proxy_on_context_create",
    "proxy_on_request_headers", "proxy_on_response_headers", "proxy_on_log", "proxy_on_delete",
    "proxy_on_new_connection", "proxy_on_downstream_data", "proxy_on_upstream_data",
    "proxy_on_downstream_connection_close", "proxy_on_upstream_connection_close",
  ]) {
    assert.ok(exports.includes(name), `missing export ${name}`);
  }
});

test("imports only proxy-wasm host functions and WASI calls Envoy registers", () => {
  const imports = WebAssembly.Module.imports(module);
  assert.ok(imports.length > 0);
  for (const i of imports) {
    const ok = (i.module === "env" && i.name.startsWith("proxy_")) || i.module === "wasi_snapshot_preview1";
    assert.ok(ok, `unexpected import ${i.module}.${i.name}`);
  }
});

// The target is 64 KiB, missed (bench/README.md says by how much and why); make bench
// reports the size against it. This guard catches a regression (an accidental -O0 build, a
// debug section left in): the release module is about 104 KiB since OTLP export (6 KB), the
// reporting service with its attribute reader, and Istio parity joined it.
test("release module size stays within the regression guard (112 KiB)", () => {
  assert.ok(statSync(PLUGIN_WASM).size <= 112 * 1024, `${statSync(PLUGIN_WASM).size} bytes`);
});
