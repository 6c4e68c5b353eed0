// The user-facing tools (tools/) as the tests drive them: the one door from tests/ into tools/,
// so a test's imports say it exercises a tool, and moving a tool touches this file only.

// The dashboards page (make demo): Istio's dashboards, their queries and PromQL.
export {
  builtins, classify, extractVariableValues, formatValues, instantQuery, loadDashboards, panelKey, parseDashboard, PromQueryError, queryKey,
  queryResultLine, referencedVariables, substitute, variableOrder, variableQueryExpr, DASHBOARDS_DIR,
  type ClassifiedQuery, type Dashboard, type InstantSample, type TrafficKind,
} from "../../tools/dashboards/queries.ts";
export { parsePromQL, walk, functionNames, type Matcher, type Node } from "../../tools/dashboards/promql.ts";
export { chromiumBinary, dumpDom, screenshot, serveStatic, writeDashboardPage } from "../../tools/dashboards/page.ts";

// The demo mesh (make demo).
export { startMesh, type Mesh, type TrafficRun } from "../../tools/mesh/mesh.ts";
export { writeServiceGraph } from "../../tools/mesh/graph.ts";
export { podRules } from "../../tools/mesh/pods.ts";
export { edgeStats, formatTraceTree, promQuery, traceDuration } from "../../tools/mesh/report.ts";
export { expectedEdges } from "../../tools/mesh/topology.ts";
export { REDIS_GET_STARS, REDIS_NIL } from "../../tools/mesh/apps/redis-wire.ts";
export { dashboardCoverage, DEMO_NO_DATA_BY_DESIGN } from "../../tools/mesh/dashboard.ts";
export { slowestJaegerTrace } from "../../tools/mesh/jaeger.ts";

// Istio manifests (make manifests), fuzzing (make fuzz), the soak (make soak).
export { renderManifests, renderText } from "../../tools/manifests.ts";
export { buildFuzzModule, knownFailures, loadCorpus, replay, runFuzz, TARGETS, type Target } from "../../tools/fuzz.ts";
export { runSoak } from "../../tools/soak.ts";
