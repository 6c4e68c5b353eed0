// The mesh's certificate authority, as istiod's built-in CA plays it: a self-signed root made
// at start, and per workload a short-lived certificate whose only name is its SPIFFE id
// (URI SAN spiffe://<trust domain>/ns/<namespace>/sa/<service account>), usable as server and
// client certificate. All crypto is Debian's openssl CLI; nothing here touches keys itself.
// Files are laid out as istio-agent's file-mounted certificates are: cert-chain.pem, key.pem,
// root-cert.pem (Istio's /etc/certs layout), one directory per workload.
import { chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "./sys.ts";

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

async function openssl(args: string[]): Promise<void> {
  const r = await run("openssl", args, { allowFail: true });
  if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.trim().slice(0, 500)}`);
}

/** A fresh root (P-256, CA:TRUE, keyCertSign) in `dir`. */
export async function createMeshCa(dir: string): Promise<MeshCa> {
  mkdirSync(dir, { recursive: true });
  const rootKey = join(dir, "root-key.pem");
  const rootCert = join(dir, "root-cert.pem");
  await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", rootKey]);
  await openssl([
    "req", "-x509", "-new", "-key", rootKey, "-sha256", "-days", String(ROOT_CERT_DAYS), "-out", rootCert,
    "-subj", `/O=${TRUST_DOMAIN}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return { dir, rootCert, rootKey };
}

/**
 * Issues a workload certificate into `dir` (cert-chain.pem, key.pem, root-cert.pem). `owner`
 * (uid) gets the files, so a proxy running as 1337 can read its own key.
 */
export async function issueWorkloadCert(ca: MeshCa, o: { namespace: string; serviceAccount: string; dir: string; owner?: number }): Promise<WorkloadCert> {
  mkdirSync(o.dir, { recursive: true });
  const id = spiffeId(o.namespace, o.serviceAccount);
  const key = join(o.dir, "key.pem");
  const csr = join(o.dir, "workload.csr");
  const certChain = join(o.dir, "cert-chain.pem");
  const rootCert = join(o.dir, "root-cert.pem");
  const ext = join(o.dir, "workload.ext");
  // Istio's workload certificates: the SPIFFE URI the only (critical) SAN, server and client use.
  writeFileSync(ext, [
    `subjectAltName=critical,URI:${id}`,
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth,clientAuth",
  ].join("\n") + "\n");
  await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
  await openssl(["req", "-new", "-key", key, "-subj", `/O=${TRUST_DOMAIN}`, "-out", csr]);
  await openssl([
    "x509", "-req", "-in", csr, "-CA", ca.rootCert, "-CAkey", ca.rootKey, "-CAcreateserial", "-sha256",
    "-days", String(WORKLOAD_CERT_DAYS), "-extfile", ext, "-out", certChain,
  ]);
  await openssl(["x509", "-in", ca.rootCert, "-out", rootCert]);
  if (o.owner !== undefined) for (const f of [key, certChain, rootCert]) chownSync(f, o.owner, o.owner);
  return { spiffeId: id, dir: o.dir, certChain, key, rootCert };
}
