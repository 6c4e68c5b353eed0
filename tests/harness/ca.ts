// The mesh's certificate authority for the tests, the demo and the benchmark, as istiod's
// built-in CA plays it: a self-signed root made at start, and per workload a short-lived
// certificate whose only name is its SPIFFE id (URI SAN
// spiffe://<trust domain>/ns/<namespace>/sa/<service account>), usable as server and client
// certificate. All crypto is Debian's openssl CLI; nothing here touches keys itself.
// Files are laid out as istio-agent's file-mounted certificates are: cert-chain.pem, key.pem,
// root-cert.pem (Istio's /etc/certs layout), one directory per workload.
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

export const TRUST_DOMAIN = "cluster.local";
/** Istio's default workload certificate lifetime (istio-agent SECRET_TTL, 24 h). */
export const WORKLOAD_CERT_DAYS = 1;
const ROOT_CERT_DAYS = 10;

export function spiffeId(namespace: string, serviceAccount: string): string {
  return `spiffe://${TRUST_DOMAIN}/ns/${namespace}/sa/${serviceAccount}`;
}

export interface MeshCa {
  dir: string;
  rootCert: string;
  rootKey: string;
}

export interface WorkloadCert {
  spiffeId: string;
  dir: string;
  certChain: string;
  key: string;
  rootCert: string;
}

function openssl(args: string[]): void {
  const r = spawnSync("openssl", args, { encoding: "utf8" });
  if (r.error) throw new Error(`openssl not found (apt-get install openssl): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.trim().slice(0, 500)}`);
}

/** A fresh root (P-256, CA:TRUE, keyCertSign) in `dir`. */
export function createMeshCa(dir: string): MeshCa {
  mkdirSync(dir, { recursive: true });
  const rootKey = join(dir, "root-key.pem");
  const rootCert = join(dir, "root-cert.pem");
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", rootKey]);
  openssl([
    "req", "-x509", "-new", "-key", rootKey, "-sha256", "-days", String(ROOT_CERT_DAYS), "-out", rootCert,
    "-subj", `/O=${TRUST_DOMAIN}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return { dir, rootCert, rootKey };
}

/** A CA in a temporary directory removed when the process exits (tests). */
export function throwawayCa(): MeshCa {
  const dir = mkdtempSync(join(tmpdir(), "mesh-ca-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return createMeshCa(dir);
}

/**
 * Issues a workload certificate (cert-chain.pem, key.pem, root-cert.pem) into `dir`, by default
 * <ca dir>/<namespace>/<service account>. `owner` (uid) gets the files, so a proxy running as
 * 1337 can read its own key.
 */
export function issueWorkloadCert(ca: MeshCa, o: { namespace: string; serviceAccount: string; dir?: string; owner?: number }): WorkloadCert {
  const dir = o.dir ?? join(ca.dir, o.namespace, o.serviceAccount);
  mkdirSync(dir, { recursive: true });
  const id = spiffeId(o.namespace, o.serviceAccount);
  const key = join(dir, "key.pem");
  const csr = join(dir, "workload.csr");
  const certChain = join(dir, "cert-chain.pem");
  const rootCert = join(dir, "root-cert.pem");
  const ext = join(dir, "workload.ext");
  // Istio's workload certificates: the SPIFFE URI the only (critical) SAN, server and client use.
  writeFileSync(ext, [
    `subjectAltName=critical,URI:${id}`,
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth,clientAuth",
  ].join("\n") + "\n");
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
  openssl(["req", "-new", "-key", key, "-subj", `/O=${TRUST_DOMAIN}`, "-out", csr]);
  openssl([
    "x509", "-req", "-in", csr, "-CA", ca.rootCert, "-CAkey", ca.rootKey, "-CAcreateserial", "-sha256",
    "-days", String(WORKLOAD_CERT_DAYS), "-extfile", ext, "-out", certChain,
  ]);
  openssl(["x509", "-in", ca.rootCert, "-out", rootCert]);
  if (o.owner !== undefined) for (const f of [key, certChain, rootCert]) chownSync(f, o.owner, o.owner);
  return { spiffeId: id, dir, certChain, key, rootCert };
}
