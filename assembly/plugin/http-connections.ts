// Which connections the HTTP filter measures, so the network filter leaves them to it.
//
// istiod puts NETWORK WasmPlugins (and TrafficExtensions) in front of the HTTP connection
// manager on HTTP filter chains too, outbound and inbound (pilot/pkg/networking/core listener.go,
// listener_inbound.go), while Istio reports istio_tcp_* on TCP chains only. Nothing the network
// filter can read tells an HCM chain from a tcp_proxy one (istiod names both chains of a port
// alike), and the first bytes do not either (HTTP sent to a TCP port is TCP to Istio). What does
// tell is the HTTP filter itself: both filters come from one module, so Envoy runs them in one VM
// per worker (its VM key is vm_id, vm configuration and code; istiod sets neither of the first
// two), and every filter of a connection runs on that connection's worker. The HTTP filter marks
// its connection here; the network filter, which on an HCM chain reports only at close (no
// upstream at connection level), then reports nothing for it. docs/tcp.md has the details.
import { getPropertyI64 } from "../sdk/host";
import * as P from "./properties";

// connection.id -> an HTTP request was seen on it. Only connections a network filter tracks are
// here, from its new-connection callback to its close: bounded by the open connections.
const tracked = new Map<i64, bool>();

/** The network filter's connection id, tracked until untrackConnection. */
export function trackConnection(): i64 {
  const id = getPropertyI64(P.CONNECTION_ID, -1);
  if (id >= 0) tracked.set(id, false);
  return id;
}

/** Per HTTP request: marks its connection when a network filter of this VM tracks it. */
export function markHttpConnection(): void {
  if (tracked.size == 0) return; // no network filter here: no host call
  const id = getPropertyI64(P.CONNECTION_ID, -1);
  if (id >= 0 && tracked.has(id)) tracked.set(id, true);
}

/** True when the HTTP filter measured requests on this connection. */
export function carriesHttp(id: i64): bool {
  return id >= 0 && tracked.has(id) && tracked.get(id);
}

export function untrackConnection(id: i64): void {
  if (id >= 0) tracked.delete(id);
}
