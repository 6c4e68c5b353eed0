// The TCP side of a stream: bytes counted in the data callbacks into the connection's facts;
// the reporter reports them as deltas on its timer while the connection is open (so long-lived
// connections show traffic) and at close, so the sum of the deltas is exactly the bytes moved.
import { ConnectionInfo } from "./info";
import { Telemetry } from "./telemetry";
import { carriesHttp, trackConnection, untrackConnection } from "./http-connections";

export class TcpStream {
  readonly info: ConnectionInfo;
  private connectionId: i64 = -1;

  constructor(
    readonly telemetry: Telemetry,
    contextId: u32,
  ) {
    this.info = new ConnectionInfo(contextId);
    this.info.role = telemetry.role();
  }

  onNewConnection(): void {
    this.connectionId = trackConnection();
    this.telemetry.openConnection(this.info);
  }

  /** Bytes from the downstream peer (Istio's "received"). */
  onDownstreamData(size: u32): void {
    this.info.received += size;
  }

  /** Bytes from the upstream, sent on to the downstream peer (Istio's "sent"). */
  onUpstreamData(size: u32): void {
    this.info.sent += size;
  }

  onClose(): void {
    const id = this.connectionId;
    // The HTTP filter measured this connection (a chain with an HTTP connection manager, where
    // istiod puts NETWORK plugins too): Istio reports no TCP metrics there. On such a chain the
    // connection has no upstream of its own, so the timer never reported it either.
    if (carriesHttp(id)) this.telemetry.open.delete(this.info);
    else this.telemetry.closeConnection(this.info);
    untrackConnection(id);
  }
}
