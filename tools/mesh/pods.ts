// Pods as Linux network namespaces on one bridge, with Istio's traffic interception.
//
//   host:  bridge <prefix>0 = 10.77.<subnet>.1/24 (Prometheus scrapes and Zipkin listens here)
//   pod:   netns <prefix>-<key>, eth0 = 10.77.<subnet>.<octet>/24 (veth <prefix>v<i> on the bridge),
//          lo up, no default route: nothing a pod sends can leave the bridge.
//   names: /etc/netns/<netns>/hosts, which `ip netns exec` mounts over /etc/hosts, maps each
//          service name (reviews, reviews.bookinfo, reviews.bookinfo.svc.cluster.local) to its
//          ClusterIP, an address of the mesh subnet that no interface holds: like a Kubernetes
//          service IP, only the sidecar's interception gives it meaning.
//
// Interception is istio-iptables' rule set (nat table, in the pod's namespace only):
// inbound TCP goes to the sidecar's 15006 except Envoy's own ports (15090 metrics, 15021
// health, 15020, 15008); outbound TCP goes to 15001 except traffic of the proxy's uid/gid
// 1337 and loopback traffic, and traffic from 127.0.0.6 (the inbound passthrough source).
// The host's iptables are not touched, with one exception: where br_netfilter passes bridged
// traffic through the host's FORWARD chain and that chain drops by default (a Docker host), an
// ACCEPT for the mesh bridge (comment `mesh-telemetry-wasm:<prefix>`) is added, and removed
// with the bridge. Same for INPUT (the Zipkin collector on the bridge address).
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { endProcesses, run } from "./sys.ts";
import { sleep } from "../../tests/harness/envoy.ts";

export const PROXY_UID = 1337;
export const OUTBOUND_CAPTURE_PORT = 15001;
export const INBOUND_CAPTURE_PORT = 15006;
export const EXCLUDED_INBOUND_PORTS = [15008, 15090, 15021, 15020];

export interface NetPod {
  /** netns name, `<prefix>-<key>`. */
  netns: string;
  ip: string;
  /** Host side of the veth pair. */
  hostVeth: string;
  /** Istio interception (sidecars yes, the gateway no: Istio does not intercept gateways). */
  intercept: boolean;
  /** Lines of the pod's /etc/hosts. */
  hosts: string[];
}

export function subnetAddress(subnet: number, octet: number): string {
  return `10.77.${subnet}.${octet}`;
}

export function bridgeName(prefix: string): string {
  return `${prefix}0`;
}

/** istio-iptables' nat rules, as iptables-restore input. */
export function istioIptablesRules(uid = PROXY_UID): string {
  const lines = [
    "*nat",
    ":ISTIO_INBOUND - [0:0]",
    ":ISTIO_IN_REDIRECT - [0:0]",
    ":ISTIO_OUTPUT - [0:0]",
    ":ISTIO_REDIRECT - [0:0]",
    `-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports ${OUTBOUND_CAPTURE_PORT}`,
    `-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${INBOUND_CAPTURE_PORT}`,
    "-A PREROUTING -p tcp -j ISTIO_INBOUND",
    ...EXCLUDED_INBOUND_PORTS.map((p) => `-A ISTIO_INBOUND -p tcp --dport ${p} -j RETURN`),
    "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
    "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
    // The inbound passthrough cluster connects from 127.0.0.6: let it reach the app.
    "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN",
    // The proxy calling its own pod's IP (a pod calling its own service): treat as inbound.
    `-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp ! --dport 15008 -m owner --uid-owner ${uid} -j ISTIO_IN_REDIRECT`,
    `-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner ${uid} -j RETURN`,
    // The proxy's own traffic (its upstream connections, Zipkin reports) is never redirected.
    `-A ISTIO_OUTPUT -m owner --uid-owner ${uid} -j RETURN`,
    `-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp ! --dport 15008 -m owner --gid-owner ${uid} -j ISTIO_IN_REDIRECT`,
    `-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner ${uid} -j RETURN`,
    `-A ISTIO_OUTPUT -m owner --gid-owner ${uid} -j RETURN`,
    "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
    "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
    "COMMIT",
  ];
  return lines.join("\n") + "\n";
}

/** Creates the bridge with the host's address on it; returns host rules it had to add (usually none). */
export async function createBridge(prefix: string, subnet: number): Promise<string[]> {
  const bridge = bridgeName(prefix);
  await run("ip", ["link", "add", bridge, "type", "bridge"]);
  await run("ip", ["addr", "add", `${subnetAddress(subnet, 1)}/24`, "dev", bridge]);
  await run("ip", ["link", "set", bridge, "up"]);
  return allowOnHost(prefix);
}

const ruleComment = (prefix: string) => `mesh-telemetry-wasm:${prefix}`;

/** Host ACCEPT rules for the bridge, only where the host's policy would drop its traffic. Returns the rules added. */
async function allowOnHost(prefix: string): Promise<string[]> {
  const added: string[] = [];
  const policy = async (chain: string) => /^-P \S+ (\S+)/m.exec((await run("iptables", ["-S", chain], { allowFail: true })).stdout)?.[1] ?? "ACCEPT";
  let bridgeNf = false;
  try {
    bridgeNf = readFileSync("/proc/sys/net/bridge/bridge-nf-call-iptables", "utf8").trim() === "1";
  } catch {
    // br_netfilter not loaded: bridged frames never see iptables
  }
  const bridge = bridgeName(prefix);
  const rules: Array<[string, string[]]> = [];
  if (bridgeNf && (await policy("FORWARD")) !== "ACCEPT") rules.push(["FORWARD", ["-i", bridge, "-o", bridge]]);
  if ((await policy("INPUT")) !== "ACCEPT") rules.push(["INPUT", ["-i", bridge]]);
  for (const [chain, match] of rules) {
    const spec = [...match, "-m", "comment", "--comment", ruleComment(prefix), "-j", "ACCEPT"];
    await run("iptables", ["-I", chain, "1", ...spec]);
    added.push(`${chain} ${spec.join(" ")}`);
  }
  return added;
}

/** Deletes the host rules allowOnHost added (found by their comment). */
export async function removeHostRules(prefix: string): Promise<string[]> {
  const saved = await run("iptables-save", ["-t", "filter"], { allowFail: true });
  const removed: string[] = [];
  for (const line of saved.stdout.split("\n")) {
    if (!line.startsWith("-A ") || !line.includes(ruleComment(prefix))) continue;
    const args = line.slice(3).match(/"[^"]*"|\S+/g)!.map((a) => a.replace(/^"|"$/g, ""));
    await run("iptables", ["-D", ...args], { allowFail: true });
    removed.push(`host iptables rule -A ${line.slice(3)}`);
  }
  return removed;
}

export async function createPod(prefix: string, pod: NetPod): Promise<void> {
  const ns = pod.netns;
  await run("ip", ["netns", "add", ns]);
  await run("ip", ["link", "add", pod.hostVeth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  await run("ip", ["link", "set", pod.hostVeth, "master", bridgeName(prefix), "up"]);
  await run("ip", ["-n", ns, "addr", "add", `${pod.ip}/24`, "dev", "eth0"]);
  await run("ip", ["-n", ns, "link", "set", "eth0", "up"]);
  await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
  const etc = join("/etc/netns", ns);
  mkdirSync(etc, { recursive: true });
  writeFileSync(join(etc, "hosts"), pod.hosts.join("\n") + "\n");
  if (pod.intercept) {
    await run("ip", ["netns", "exec", ns, "iptables-restore", "--noflush"], { input: istioIptablesRules() });
  }
}

/** The pod's nat rules with packet counters, as `iptables-save -c` prints them. */
export async function podRules(netns: string): Promise<string> {
  return (await run("ip", ["netns", "exec", netns, "iptables-save", "--counters", "-t", "nat"])).stdout;
}

export async function netnsList(): Promise<string[]> {
  const r = await run("ip", ["netns", "list"], { allowFail: true });
  return r.stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
}

export async function meshNetns(prefix: string): Promise<string[]> {
  return (await netnsList()).filter((n) => n.startsWith(`${prefix}-`));
}

export async function meshLinks(prefix: string): Promise<string[]> {
  const r = await run("ip", ["-o", "link", "show"], { allowFail: true });
  const names = r.stdout.split("\n").map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter((n): n is string => !!n);
  const re = new RegExp(`^${prefix}(0|v\\d+)$`);
  return names.filter((n) => re.test(n));
}

export function meshEtcDirs(prefix: string): string[] {
  try {
    return readdirSync("/etc/netns").filter((d) => d.startsWith(`${prefix}-`)).map((d) => join("/etc/netns", d));
  } catch {
    return [];
  }
}

/** Pids of processes inside a namespace (all started by the mesh: nothing else enters it). */
export async function netnsPids(netns: string): Promise<number[]> {
  const r = await run("ip", ["netns", "pids", netns], { allowFail: true });
  return r.stdout.split("\n").map((l) => Number(l.trim())).filter((n) => Number.isInteger(n) && n > 0);
}

/**
 * Removes every namespace, veth, the bridge and the /etc/netns entries of a mesh prefix, ending
 * any process still inside a namespace first (otherwise the namespace, and its veth, would
 * outlive `ip netns del`). Returns what it removed.
 */
export async function removeNetwork(prefix: string): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of await meshNetns(prefix)) {
    const pids = await netnsPids(ns);
    if (pids.length > 0) {
      await endProcesses(pids);
      removed.push(`processes ${pids.join(", ")} in ${ns}`);
    }
    await run("ip", ["netns", "del", ns], { allowFail: true });
    removed.push(`netns ${ns}`);
  }
  // Deleting a namespace deletes its veth end, and with it the host end, asynchronously.
  for (let i = 0; i < 20 && (await meshLinks(prefix)).some((l) => l !== bridgeName(prefix)); i++) await sleep(50);
  const links = await meshLinks(prefix);
  for (const link of links.sort((a, b) => (a === bridgeName(prefix) ? 1 : b === bridgeName(prefix) ? -1 : 0))) {
    await run("ip", ["link", "del", link], { allowFail: true });
    removed.push(`link ${link}`);
  }
  removed.push(...await removeHostRules(prefix));
  for (const dir of meshEtcDirs(prefix)) {
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}
