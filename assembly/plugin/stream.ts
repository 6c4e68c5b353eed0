// The stream context Envoy creates per HTTP request or TCP connection. The same plugin serves
// as an HTTP filter and as a network filter, so the first callback decides which telemetry the
// stream carries.
import {
  Context, FilterHeadersStatusValues, FilterStatusValues, PeerTypeValues,
} from "@solo-io/proxy-runtime/assembly/runtime";
import { streamEnded } from "../sdk/memory";
import { HttpTelemetry } from "./http";
import { TcpTelemetry } from "./tcp";
import { TelemetryRoot } from "./root";

export class TelemetryStream extends Context {
  private http: HttpTelemetry | null = null;
  private tcp: TcpTelemetry | null = null;

  constructor(context_id: u32, readonly root: TelemetryRoot) {
    super(context_id, root);
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const http = new HttpTelemetry(this.root, this.context_id);
    this.http = http;
    http.onRequestHeaders();
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const http = this.http;
    if (http !== null) http.onResponseHeaders();
    return FilterHeadersStatusValues.Continue;
  }

  onNewConnection(): FilterStatusValues {
    const tcp = new TcpTelemetry(this.root, this.context_id);
    this.tcp = tcp;
    tcp.onNewConnection();
    return FilterStatusValues.Continue;
  }

  onDownstreamData(size: usize, _end: bool): FilterStatusValues {
    const tcp = this.tcp;
    if (tcp !== null) tcp.onDownstreamData(<u32>size);
    return FilterStatusValues.Continue;
  }

  onUpstreamData(size: usize, _end: bool): FilterStatusValues {
    const tcp = this.tcp;
    if (tcp !== null) tcp.onUpstreamData(<u32>size);
    return FilterStatusValues.Continue;
  }

  onDownstreamConnectionClose(_t: PeerTypeValues): void {}

  onUpstreamConnectionClose(_t: PeerTypeValues): void {}

  // Envoy logs an HTTP stream when it completes and a TCP stream when the connection closes.
  onLog(): void {
    const http = this.http;
    const tcp = this.tcp;
    if (http !== null) http.onLog();
    else if (tcp !== null) tcp.onClose();
    // An HTTP stream that never reached this filter's request headers (answered or reset
    // before it): still counted.
    else new HttpTelemetry(this.root, this.context_id).onLogWithoutHeaders();
  }

  onDelete(): void {
    streamEnded();
  }
}
