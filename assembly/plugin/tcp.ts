// TCP telemetry of one connection: bytes counted in the data callbacks, reported as deltas on
// the root's timer (so long-lived connections show traffic while open) and at close, so the
// sum of the deltas is exactly the bytes moved. Labels are computed once, at the first report
// after the connection's identity is settled.
import { getProperty, getPropertyI64, incrementMetric } from "../sdk/host";
import { Label, TCP_LABEL_COUNT, UNKNOWN } from "../stats/labels";
import { evaluateToString } from "../expr/ast";
import { HOST_ATTRIBUTES } from "./expressions";
import { sanitizeLabelValue } from "../stats/names";
import { responseFlagsString } from "../stats/flags";
import { fillPeerLabels, readUpstreamRoute, Role, roleOf } from "./labels";
import * as P from "./properties";
import { TelemetryRoot } from "./root";

// Index of each family in the TCP plan (TCP_METRIC_NAMES order).
const SENT = 0;
const RECEIVED = 1;
const OPENED = 2;
const CLOSED = 3;

export class TcpTelemetry {
  private role: Role = Role.Inbound;
  private received: u64 = 0;
  private sent: u64 = 0;
  private reportedReceived: u64 = 0;
  private reportedSent: u64 = 0;
  private ids: StaticArray<i64> | null = null;

  constructor(
    readonly root: TelemetryRoot,
    readonly contextId: u32,
  ) {}

  onNewConnection(): void {
    this.role = roleOf(this.root.config.reporter);
    this.root.openConnections.add(this);
  }

  /** Bytes from the downstream peer (Istio's "received"). */
  onDownstreamData(size: u32): void {
    this.received += size;
  }

  /** Bytes from the upstream, sent on to the downstream peer (Istio's "sent"). */
  onUpstreamData(size: u32): void {
    this.sent += size;
  }

  /**
   * Reports the bytes moved since the last report; the first report also counts the open.
   * Until the connection's identity is settled (see identityKnown) a timer report is skipped
   * and the bytes wait for the next one, so no byte is reported under wrong labels.
   */
  report(closing: bool = false): void {
    let ids = this.ids;
    if (ids === null) {
      if (!closing && !this.identityKnown()) return;
      ids = this.resolveSeries();
      this.ids = ids;
      add(ids[OPENED], 1);
    }
    add(ids[SENT], this.sent - this.reportedSent);
    add(ids[RECEIVED], this.received - this.reportedReceived);
    this.reportedSent = this.sent;
    this.reportedReceived = this.received;
  }

  // Labels depend on the upstream host (its istio.workload label) and, inbound, on the TLS
  // handshake: both are settled once bytes have passed either way (TLS is done; server-first
  // protocols speak first) and tcp_proxy has picked an upstream host.
  private identityKnown(): bool {
    return this.received + this.sent > 0 && getProperty(P.UPSTREAM_ADDRESS) !== null;
  }

  onClose(): void {
    this.report(true);
    add(this.ids![CLOSED], 1);
    this.root.openConnections.delete(this);
  }

  private resolveSeries(): StaticArray<i64> {
    const series = this.root.tcpSeries!;
    const plan = series.plan;
    const v = new StaticArray<string>(plan.slotCount);
    fillPeerLabels(v, this.role, this.root.local.workload, null, null, "", readUpstreamRoute(this.role));
    v[Label.RequestProtocol] = "tcp";
    v[Label.ResponseFlags] = responseFlagsString(getPropertyI64(P.RESPONSE_FLAGS, 0));
    for (let i = 0; i < plan.expressions.length; i++) {
      const value = evaluateToString(plan.expressions[i], HOST_ATTRIBUTES);
      v[TCP_LABEL_COUNT + i] = value === null ? UNKNOWN : value;
    }
    for (let i = 0; i < v.length; i++) v[i] = sanitizeLabelValue(v[i]);
    return series.resolve(v);
  }
}

function add(id: i64, delta: u64): void {
  if (id >= 0 && delta > 0) incrementMetric(<u32>id, <i64>delta);
}
