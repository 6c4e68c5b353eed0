// `make demo-down`: stops the demo mesh and removes everything it created, also after a crash
// or a kill -9 of `make demo`: asks a running demo to stop (SIGTERM, its own orderly
// teardown), then sweeps whatever is left of prefix `mtw` (containers in the mesh's podman
// store, processes the demo started, namespaces, veths, the bridge, /etc/netns entries) and
// checks that nothing remains: `ip netns list`, the mesh's `podman ps -a`, `ip link`,
// `iptables-save` and the process table.
//
//   node --import tsx tools/demo-down.ts [PREFIX]   (default mtw; the mesh test uses mtt)
import { leftovers, readState, runningMesh, sweepMesh } from "./mesh/cleanup.ts";
import { podmanPsCommand } from "./mesh/containers.ts";
import { alive, isRoot, stepper } from "./mesh/sys.ts";
import { sleep } from "../tests/harness/envoy.ts";

const prefix = process.argv[2] ?? "mtw";
const step = stepper();

const running = runningMesh(prefix);
if (running) {
  step(`demo running (pid ${running.pid}, ${running.mode}, since ${running.startedAt}): asking it to stop`);
  process.kill(running.pid, "SIGTERM");
  const deadline = Date.now() + 60_000;
  while (alive(running.pid) && Date.now() < deadline) await sleep(200);
  step(alive(running.pid) ? `pid ${running.pid} still running after 60 s; sweeping anyway` : "it stopped");
} else if (readState(prefix)) {
  step("a state file from an earlier run exists, its process is gone: sweeping what it left");
}

const removed = await sweepMesh(prefix);
step(removed.length ? `removed: ${removed.join(", ")}` : `nothing of mesh '${prefix}' was left to remove`);

const left = await leftovers(prefix);
if (left.length > 0) {
  step(`STILL PRESENT: ${left.join("; ")}`);
  process.exit(1);
}
if (!isRoot()) {
  step("verified clean: no process the demo started is left (not root: the demo ran as processes on loopback, without namespaces or containers)");
  process.exit(0);
}
step(`verified clean: no ${prefix}-* network namespace (ip netns list), no container (${podmanPsCommand().replace(/ ps -a$/, "")} ps -a), ` +
  `no ${prefix}0/${prefix}v* link (ip link), no host iptables rule naming them (iptables-save), no process the demo started (ps)`);
