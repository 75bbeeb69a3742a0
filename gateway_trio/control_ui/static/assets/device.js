// The browser's device identity (protocol.md §6.4): an Ed25519 key made with WebCrypto, kept in
// IndexedDB as a non-extractable CryptoKey (localStorage holds an extractable copy only when
// IndexedDB is unavailable). The device id is the hex SHA-256 of the raw public key; a connect
// proof signs the v3 payload over the gateway's challenge nonce.

const DB_NAME = "openclaw-control-ui";
const STORE = "device";
const LS_KEY = "openclaw.control.device.v1";
const TOKEN_PREFIX = "openclaw.control.deviceToken.v1:";

export function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromB64url(text) {
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

function hex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Why this browser cannot have a device identity here, or null when it can. */
export function identityUnavailableReason() {
  if (!window.isSecureContext) return "insecure-context";
  if (!globalThis.crypto || !crypto.subtle) return "no-webcrypto";
  return null;
}

function openDb() {
  return new Promise((resolve, reject) => {
    if (!globalThis.indexedDB) return reject(new Error("no IndexedDB"));
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error || new Error("IndexedDB open failed"));
  });
}

function idb(mode, fn) {
  return openDb().then(
    (db) =>
      new Promise((resolve, reject) => {
        const tx = db.transaction(STORE, mode);
        const req = fn(tx.objectStore(STORE));
        tx.oncomplete = () => {
          db.close();
          resolve(req.result);
        };
        tx.onerror = () => {
          db.close();
          reject(tx.error || new Error("IndexedDB transaction failed"));
        };
      }),
  );
}

async function describe(privateKey, publicKey) {
  const raw = await crypto.subtle.exportKey("raw", publicKey);
  const digest = await crypto.subtle.digest("SHA-256", raw);
  return { privateKey, publicKey, id: hex(digest), publicKeyB64: b64url(raw) };
}

async function fromLocalStorage() {
  const saved = localStorage.getItem(LS_KEY);
  if (!saved) return null;
  const { pkcs8, raw } = JSON.parse(saved);
  const privateKey = await crypto.subtle.importKey("pkcs8", fromB64url(pkcs8), { name: "Ed25519" }, false, ["sign"]);
  const publicKey = await crypto.subtle.importKey("raw", fromB64url(raw), { name: "Ed25519" }, true, ["verify"]);
  return describe(privateKey, publicKey);
}

let cached = null;

/** The identity, created on first use; {unavailable: reason} when the browser cannot make one. */
export async function loadIdentity() {
  if (cached) return cached;
  const reason = identityUnavailableReason();
  if (reason) return { unavailable: reason };
  try {
    const stored = await idb("readonly", (s) => s.get("key"));
    if (stored && stored.privateKey && stored.publicKey) {
      cached = await describe(stored.privateKey, stored.publicKey);
      return cached;
    }
  } catch {
    const ls = await fromLocalStorage().catch(() => null);
    if (ls) return (cached = ls);
  }
  let pair;
  try {
    pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  } catch {
    return { unavailable: "no-ed25519" };
  }
  try {
    await idb("readwrite", (s) => s.put({ privateKey: pair.privateKey, publicKey: pair.publicKey }, "key"));
  } catch {
    // No IndexedDB (some private modes): keep an extractable copy in localStorage instead.
    const ls = await fromLocalStorage().catch(() => null);
    if (ls) return (cached = ls);
    const copy = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
    const pkcs8 = await crypto.subtle.exportKey("pkcs8", copy.privateKey);
    const raw = await crypto.subtle.exportKey("raw", copy.publicKey);
    localStorage.setItem(LS_KEY, JSON.stringify({ pkcs8: b64url(pkcs8), raw: b64url(raw) }));
    pair = copy;
  }
  cached = await describe(pair.privateKey, pair.publicKey);
  return cached;
}

function norm(value) {
  return (value || "").trim().replace(/[^\x00-\x7f]/g, "").toLowerCase();
}

/** The v3 string a device signs (exactly as gateway_core.device.signature_payload builds it). */
export function payloadV3({ deviceId, clientId, clientMode, role, scopes, signedAt, token, nonce, platform, deviceFamily }) {
  return [
    "v3",
    deviceId,
    clientId,
    clientMode,
    role,
    scopes.join(","),
    String(signedAt),
    token || "",
    nonce,
    norm(platform),
    norm(deviceFamily),
  ].join("|");
}

/** `connect.params.device` for `identity`, signed over the challenge. */
export async function proof(identity, fields) {
  const payload = payloadV3({ ...fields, deviceId: identity.id });
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, identity.privateKey, new TextEncoder().encode(payload));
  return {
    id: identity.id,
    publicKey: identity.publicKeyB64,
    signature: b64url(sig),
    signedAt: fields.signedAt,
    nonce: fields.nonce,
  };
}

export function loadDeviceToken(deviceId) {
  try {
    return JSON.parse(localStorage.getItem(TOKEN_PREFIX + deviceId) || "null");
  } catch {
    return null;
  }
}

export function saveDeviceToken(deviceId, token, scopes) {
  localStorage.setItem(TOKEN_PREFIX + deviceId, JSON.stringify({ token, scopes }));
}

export function clearDeviceToken(deviceId) {
  localStorage.removeItem(TOKEN_PREFIX + deviceId);
}
