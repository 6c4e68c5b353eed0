// The stream context Envoy creates per HTTP request or TCP connection. The same plugin serves
// as an HTTP filter and as a network filter, so the first callback decides which side the
// stream carries. Callbacks only collect facts and act on headers; reporting is the
// Telemetry service's (telemetry.ts), which the root hands to every stream.
import {
  Context, FilterHeadersStatusValues, FilterStatusValues, PeerTypeValues, RootContext,
} from "@solo-io/proxy-runtime/assembly/runtime";
import { streamEnded } from "../sdk/memory";
import { HttpStream } from "./http";
import { TcpStream } from "./tcp";
import { Telemetry } from "./telemetry";

export class TelemetryStream extends Context {
  private http: HttpStream | null = null;
  private tcp: TcpStream | null = null;

  constructor(
    context_id: u32,
    root: RootContext,
    readonly telemetry: Telemetry,
  ) {
    super(context_id, root);
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const http = new HttpStream(this.telemetry, this.context_id);
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
    const tcp = new TcpStream(this.telemetry, this.context_id);
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
    else new HttpStream(this.telemetry, this.context_id).onLogWithoutHeaders();
  }

  onDelete(): void {
    streamEnded();
  }
}
