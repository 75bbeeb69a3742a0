// The WebSocket protocol client (protocol v4): challenge → signed connect → hello-ok, requests with
// ids, broadcast events with per-connection seq (a gap means "refetch", not an error), and
// reconnects with capped exponential backoff. It connects only to the URL it is given, and main.js
// only ever gives it the gateway that served this page.

import { clearDeviceToken, loadDeviceToken, loadIdentity, proof, saveDeviceToken } from "./device.js";
import { uuid } from "./dom.js";

export const CLIENT_ID = "openclaw-control-ui";
export const CLIENT_MODE = "webchat";
export const UI_VERSION = "0.1.0";
export const SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.approvals", "operator.pairing"];

const CHALLENGE_TIMEOUT_MS = 10000;
const REQUEST_TIMEOUT_MS = 30000;
const BACKOFF_BASE_MS = 300;
const BACKOFF_MAX_MS = 10000;
const PAIRING_RETRY_MS = 3000;

export class GatewayError extends Error {
  constructor(error) {
    super((error && error.message) || "request failed");
    this.code = error && error.code;
    this.details = (error && error.details) || {};
    this.retryable = Boolean(error && error.retryable);
    this.retryAfterMs = error && error.retryAfterMs;
  }
}

/** What a refused handshake means for the user: {kind, ...}. */
export function classifyRefusal(error, close) {
  const details = (error && error.details) || {};
  const code = details.code || "";
  const message = (error && error.message) || (close && close.reason) || "";
  if (code === "CONTROL_UI_ORIGIN_NOT_ALLOWED" || /origin not allowed/.test(message)) {
    return { kind: "origin", message, reason: details.reason };
  }
  if (code === "CONTROL_UI_DEVICE_IDENTITY_REQUIRED" || code === "DEVICE_IDENTITY_REQUIRED" || /device identity required/.test(message)) {
    return { kind: "insecure", message };
  }
  if (code === "PAIRING_REQUIRED" || /^pairing required/.test(message)) {
    return { kind: "pairing", message, requestId: details.requestId, deviceId: details.deviceId, reason: details.reason };
  }
  if (code === "PROTOCOL_MISMATCH" || /protocol mismatch/.test(message)) return { kind: "protocol", message };
  if (code === "AUTH_DEVICE_TOKEN_MISMATCH") return { kind: "device-token", message };
  if (code.startsWith("AUTH_") || /^unauthorized/.test(message)) {
    return {
      kind: "auth",
      message,
      retryable: code === "AUTH_RATE_LIMITED",
      retryAfterMs: error && error.retryAfterMs,
    };
  }
  if ((error && error.retryable) || (close && close.code === 1013)) {
    return { kind: "busy", message, retryAfterMs: (error && error.retryAfterMs) || 1000 };
  }
  if (code.startsWith("DEVICE_AUTH_")) return { kind: "device", message };
  return { kind: "other", message };
}

export class GatewayConnection extends EventTarget {
  /**
   * @param {{url: string, getSecret: () => string|null, platform?: string}} options
   */
  constructor({ url, getSecret, platform }) {
    super();
    this.url = url;
    this.getSecret = getSecret;
    this.platform = platform || navigator.platform || "web";
    this.instanceId = sessionStorage.getItem("openclaw.control.instance") || uuid();
    sessionStorage.setItem("openclaw.control.instance", this.instanceId);
    this.state = "idle";
    this.ws = null;
    this.hello = null;
    this.helloAt = 0;
    this.identity = null;
    this.refusal = null;
    this.lastClose = null;
    this.lastSeq = null;
    this.attempt = 0;
    this.connects = 0;
    this._pending = new Map();
    this._ids = 0;
    this._timer = null;
    this._stopped = true;
  }

  _set(state, extra = {}) {
    this.state = state;
    Object.assign(this, extra);
    this.dispatchEvent(new CustomEvent("state", { detail: { state } }));
  }

  start() {
    this._stopped = false;
    this.refusal = null;
    clearTimeout(this._timer);
    this._open();
  }

  stop() {
    this._stopped = true;
    clearTimeout(this._timer);
    if (this.ws) this.ws.close(1000, "bye");
    this._set("stopped");
  }

  /** Retry now (the "Check now" / "Retry" buttons). */
  retry() {
    if (this.state === "connected" || this.state === "connecting") return;
    this.start();
  }

  _schedule(ms) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._open(), ms);
  }

  _backoff() {
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
    this.attempt += 1;
    this.nextRetryAt = Date.now() + delay;
    this._set("reconnecting");
    this._schedule(delay);
  }

  async _open() {
    if (this._stopped) return;
    this._set(this.connects ? "reconnecting" : "connecting");
    if (!this.identity) this.identity = await loadIdentity();
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.lastClose = { code: 0, reason: String(err) };
      this._backoff();
      return;
    }
    this.ws = ws;
    let admitted = false;
    let handshakeError = null;
    let challengeTimer = setTimeout(() => ws.close(4000, "no challenge"), CHALLENGE_TIMEOUT_MS);
    const connectId = `connect-${++this._ids}`;
    ws.onmessage = async (msg) => {
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (!admitted) {
        if (frame.type === "event" && frame.event === "connect.challenge") {
          clearTimeout(challengeTimer);
          challengeTimer = null;
          try {
            ws.send(JSON.stringify({ type: "req", id: connectId, method: "connect", params: await this._connectParams(frame.payload || {}) }));
          } catch (err) {
            handshakeError = { message: String(err) };
            ws.close(4000, "connect failed");
          }
        } else if (frame.type === "res" && frame.id === connectId) {
          if (frame.ok) {
            admitted = true;
            this._admitted(frame.payload);
          } else {
            handshakeError = frame.error || { message: "connect refused" };
          }
        }
        return;
      }
      this._frame(frame);
    };
    ws.onclose = (ev) => {
      clearTimeout(challengeTimer);
      if (this.ws === ws) this.ws = null;
      this.lastClose = { code: ev.code, reason: ev.reason, at: Date.now() };
      this._failPending(new GatewayError({ code: "DISCONNECTED", message: "disconnected from the gateway" }));
      if (this._stopped) return;
      if (!admitted) {
        this._refused(handshakeError, this.lastClose);
        return;
      }
      this.dispatchEvent(new CustomEvent("disconnected", { detail: this.lastClose }));
      if (ev.code === 4001) {
        // The shared secret changed on the gateway: the stored one is stale.
        this._set("refused", { refusal: { kind: "auth", message: "The gateway's auth secret changed; sign in again." } });
        return;
      }
      this._backoff();
    };
  }

  async _connectParams(challenge) {
    const secret = this.getSecret();
    const id = this.identity && !this.identity.unavailable ? this.identity : null;
    const stored = id ? loadDeviceToken(id.id) : null;
    const auth = {};
    if (secret) {
      auth.token = secret;
      auth.password = secret;
    } else if (stored && stored.token) {
      auth.deviceToken = stored.token;
    }
    const params = {
      minProtocol: 4,
      maxProtocol: 4,
      client: { id: CLIENT_ID, version: UI_VERSION, platform: this.platform, mode: CLIENT_MODE, instanceId: this.instanceId },
      role: "operator",
      scopes: SCOPES,
      caps: [],
      auth,
      locale: navigator.language || undefined,
      userAgent: navigator.userAgent,
    };
    if (id) {
      const signedAt = typeof challenge.ts === "number" ? challenge.ts : Date.now();
      params.device = await proof(id, {
        clientId: CLIENT_ID,
        clientMode: CLIENT_MODE,
        role: "operator",
        scopes: SCOPES,
        signedAt,
        token: auth.token || auth.deviceToken || "",
        nonce: challenge.nonce,
        platform: this.platform,
      });
    }
    return params;
  }

  _admitted(hello) {
    this.hello = hello;
    this.helloAt = Date.now();
    this.lastSeq = null;
    this.attempt = 0;
    this.connects += 1;
    this.refusal = null;
    const auth = hello.auth || {};
    if (auth.deviceToken && this.identity && this.identity.id) saveDeviceToken(this.identity.id, auth.deviceToken, auth.scopes || []);
    this._set("connected");
    this.dispatchEvent(new CustomEvent("hello", { detail: { hello, reconnect: this.connects > 1 } }));
  }

  _refused(error, close) {
    const refusal = classifyRefusal(error, close);
    if (!error && (!close || !close.reason)) {
      // No answer at all (gateway down or restarting): keep trying.
      this._backoff();
      return;
    }
    if (refusal.kind === "device-token" && this.identity && this.identity.id) {
      clearDeviceToken(this.identity.id);
      if (this.getSecret()) {
        this._schedule(100);
        return;
      }
      refusal.kind = "auth";
    }
    if (refusal.kind === "busy") {
      this.nextRetryAt = Date.now() + refusal.retryAfterMs;
      this._set("reconnecting", { refusal });
      this._schedule(refusal.retryAfterMs);
      return;
    }
    if (refusal.kind === "pairing") {
      this.nextRetryAt = Date.now() + PAIRING_RETRY_MS;
      this._set("pairing", { refusal });
      this._schedule(PAIRING_RETRY_MS);
      return;
    }
    if (refusal.kind === "other" || refusal.kind === "device") {
      // Unexpected: show it, and try again later in case it was transient.
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
      this.attempt += 1;
      this.nextRetryAt = Date.now() + delay;
      this._set("refused", { refusal });
      this._schedule(delay);
      return;
    }
    this._set("refused", { refusal });
  }

  _frame(frame) {
    if (frame.type === "res") {
      const pending = this._pending.get(frame.id);
      if (!pending) return;
      this._pending.delete(frame.id);
      clearTimeout(pending.timer);
      if (frame.ok) pending.resolve(frame.payload);
      else pending.reject(new GatewayError(frame.error));
      return;
    }
    if (frame.type !== "event") return;
    if (typeof frame.seq === "number") {
      if (this.lastSeq !== null && frame.seq > this.lastSeq + 1) {
        this.dispatchEvent(new CustomEvent("gap", { detail: { expected: this.lastSeq + 1, received: frame.seq } }));
      }
      this.lastSeq = frame.seq;
    }
    this.dispatchEvent(new CustomEvent("gateway-event", { detail: frame }));
    if (frame.event === "shutdown") this.dispatchEvent(new CustomEvent("shutdown", { detail: frame.payload || {} }));
  }

  _failPending(err) {
    for (const [, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(err);
    }
    this._pending.clear();
  }

  /** One RPC: resolves with the payload, rejects with a GatewayError. */
  request(method, params, { timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    const ws = this.ws;
    if (!ws || this.state !== "connected" || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new GatewayError({ code: "DISCONNECTED", message: "not connected to the gateway" }));
    }
    const id = `r${++this._ids}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new GatewayError({ code: "TIMEOUT", message: `${method} timed out` }));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      const frame = { type: "req", id, method };
      if (params !== undefined) frame.params = params;
      ws.send(JSON.stringify(frame));
    });
  }

  /** Whether the gateway advertises `method`. */
  has(method) {
    const methods = (this.hello && this.hello.features && this.hello.features.methods) || [];
    return methods.includes(method);
  }
}
