// Per-request HTTP stream context: gathers the request's dimensions and reports the Istio
// request metrics when the stream is logged.
import { Context, FilterHeadersStatusValues } from "@solo-io/proxy-runtime/assembly/runtime";
import { getPropertyI64, incrementMetric } from "../sdk/host";
import { ReporterMode } from "../config/config";
import { HTTP_LABEL_COUNT, Label, LABEL_NAMES, UNKNOWN } from "../stats/labels";
import { encodeTags, sanitizeLabelValue } from "../stats/names";
import { DIRECTION_OUTBOUND, LISTENER_DIRECTION, RESPONSE_CODE } from "./properties";
import { TelemetryRoot } from "./root";

export class HttpStream extends Context {
  constructor(context_id: u32, readonly root: TelemetryRoot) {
    super(context_id, root);
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    return FilterHeadersStatusValues.Continue;
  }

  onLog(): void {
    const series = this.root.httpSeries;
    if (series === null) return;
    const values = new StaticArray<string>(HTTP_LABEL_COUNT);
    for (let i = 0; i < HTTP_LABEL_COUNT; i++) values[i] = UNKNOWN;
    values[Label.Reporter] = reporterName(this.root.config.reporter);
    values[Label.SourceCanonicalRevision] = "latest";
    values[Label.DestinationCanonicalRevision] = "latest";
    values[Label.RequestProtocol] = "http";
    values[Label.ResponseFlags] = "-";
    values[Label.GrpcResponseStatus] = "";
    values[Label.ResponseCode] = getPropertyI64(RESPONSE_CODE, 0).toString();
    for (let i = 0; i < HTTP_LABEL_COUNT; i++) values[i] = sanitizeLabelValue(values[i]);
    const ids = series.resolve(encodeTags(LABEL_NAMES, values, HTTP_LABEL_COUNT));
    if (ids[0] >= 0) incrementMetric(<u32>ids[0], 1);
  }
}

function reporterName(mode: ReporterMode): string {
  if (mode == ReporterMode.Source) return "source";
  if (mode == ReporterMode.Destination) return "destination";
  if (mode == ReporterMode.Waypoint) return "waypoint";
  return getPropertyI64(LISTENER_DIRECTION, 0) == DIRECTION_OUTBOUND ? "source" : "destination";
}
