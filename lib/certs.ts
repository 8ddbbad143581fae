// Certificates for the control protocol's mutual TLS (`edgectl certs init`): one CA, a server
// certificate for the control plane, and one client certificate per runner whose common name is
// the runner's node id. The control plane takes a runner's identity from its certificate, so a
// runner cannot claim another node's id. RSA 2048 / SHA-256, generated with node-forge (pure JS,
// no openssl needed).

import { generateKeyPairSync } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import forge from "node-forge";

export interface IssuedCert {
  cert: string;
  key: string;
}

const DAY_MS = 86_400_000;

function serial(): string {
  // A positive 16-byte serial (leading nibble < 8 keeps it positive in DER).
  return `0${forge.util.bytesToHex(forge.random.getBytesSync(15))}`;
}

/** RSA keys from Node's native crypto (forge's pure-JS generator takes seconds per key). */
function rsaKeys(): forge.pki.rsa.KeyPair {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const privatePem = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
  const forgePrivate = forge.pki.privateKeyFromPem(privatePem) as forge.pki.rsa.PrivateKey;
  return { privateKey: forgePrivate, publicKey: forge.pki.setRsaPublicKey(forgePrivate.n, forgePrivate.e) };
}

function newCert(
  subjectCn: string,
  validDays: number,
): { cert: forge.pki.Certificate; keys: forge.pki.rsa.KeyPair } {
  const keys = rsaKeys();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + validDays * DAY_MS);
  cert.setSubject([
    { name: "commonName", value: subjectCn },
    { name: "organizationName", value: "edgeplane" },
  ]);
  return { cert, keys };
}

export function createCa(name = "edgeplane CA", validDays = 3650): IssuedCert {
  const { cert, keys } = newCert(name, validDays);
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) };
}

function issue(
  ca: IssuedCert,
  cn: string,
  usage: "server" | "client",
  hosts: string[],
  validDays: number,
): IssuedCert {
  const caCert = forge.pki.certificateFromPem(ca.cert);
  const caKey = forge.pki.privateKeyFromPem(ca.key);
  const { cert, keys } = newCert(cn, validDays);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? { type: 7, ip: h } : { type: 2, value: h }));
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: usage === "server", clientAuth: usage === "client" },
    ...(altNames.length ? [{ name: "subjectAltName", altNames }] : []),
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** The control plane's server certificate, valid for these host names and IP addresses. */
export function issueServerCert(ca: IssuedCert, hosts: string[], validDays = 825): IssuedCert {
  return issue(ca, hosts[0] ?? "control-plane", "server", hosts, validDays);
}

/** A runner's client certificate; its common name is the node id the control plane will trust. */
export function issueRunnerCert(ca: IssuedCert, nodeId: string, validDays = 825): IssuedCert {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(nodeId))
    throw new Error(`node id "${nodeId}": use [A-Za-z0-9._-], at most 128 characters`);
  return issue(ca, nodeId, "client", [], validDays);
}

/** Writes `{name}.crt` and `{name}.key` (key mode 0600) into dir. */
export async function writeCert(dir: string, name: string, c: IssuedCert): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, `${name}.crt`), c.cert);
  await writeFile(path.join(dir, `${name}.key`), c.key, { mode: 0o600 });
}

export async function readCert(dir: string, name: string): Promise<IssuedCert> {
  return {
    cert: await readFile(path.join(dir, `${name}.crt`), "utf8"),
    key: await readFile(path.join(dir, `${name}.key`), "utf8"),
  };
}
