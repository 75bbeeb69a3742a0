// Plain-language explanations for a refused connection — above all the two questions operators
// ask most: "why is my browser's origin refused?" and "why does it want HTTPS?". The gateway's
// close reason / error text is shown verbatim as well.

import { h } from "./dom.js";

function code(text) {
  return h("code", text);
}

function port() {
  return location.port || (location.protocol === "https:" ? "443" : "80");
}

function gatewayHostUrl() {
  return `http://127.0.0.1:${port()}/`;
}

/** A short note shown before connecting when this page cannot have a device identity at all. */
export function insecureNote() {
  return h("div.banner.warn#insecure-note",
    h("strong", "Not a secure context: "),
    "this page (", code(location.origin), ") is plain HTTP on a non-local address, so the browser offers no WebCrypto and the UI cannot prove a device identity; the gateway will refuse it. Open it over HTTPS, or through an SSH tunnel as ",
    code(`http://localhost:${port()}/`), ".");
}

/** An element explaining `refusal` ({kind, message, ...}); `onRetry` re-attempts the connection. */
export function explainRefusal(refusal, { onRetry, onSignIn, state } = {}) {
  const origin = location.origin;
  const said = refusal.message ? h("p.said", "The gateway said: ", h("q#refusal-message", refusal.message)) : null;
  const retry = onRetry ? h("button", { type: "button", on: { click: onRetry } }, "Retry") : null;
  let title;
  let body;
  switch (refusal.kind) {
    case "origin":
      title = "This browser origin is not allowed";
      body = [
        h("p", "The gateway refuses WebSocket connections from web pages it does not trust, so that another site open in your browser cannot drive it. This page's origin is ", code(origin), "."),
        h("ul",
          h("li", "On the gateway host, open the UI through loopback instead: ", code(gatewayHostUrl()), " (or ", code("http://localhost:<port>/"), ")."),
          h("li", "Over the LAN or behind a reverse proxy, add this exact origin to the config and it applies without a restart:"),
        ),
        h("pre.snippet", `openclaw config set gateway.controlUi.allowedOrigins '["${origin}"]'`),
        h("p.muted", "A proxy must forward the original Host header (same-origin pages on private addresses, *.local and *.ts.net hosts are trusted without an allowlist). If the gateway is behind a proxy that adds X-Forwarded-For, list it in gateway.trustedProxies."),
      ];
      break;
    case "insecure":
      title = "A secure context is needed for device identity";
      body = [
        h("p", "The Control UI proves which browser it is with a device key (Ed25519, WebCrypto). Browsers only offer WebCrypto on HTTPS pages and on localhost; this page is ", code(origin), window.isSecureContext ? " (a secure context, but the key could not be used)." : " over plain HTTP, which is not a secure context."),
        h("ul",
          h("li", "Use HTTPS: a reverse proxy with TLS, or Tailscale Serve (", code("openclaw gateway --tailscale serve"), ")."),
          h("li", "Or tunnel to the gateway host and open it as localhost: ", code(`ssh -N -L ${port()}:127.0.0.1:${port()} user@gateway-host`), ", then ", code(`http://localhost:${port()}/`), "."),
        ),
      ];
      break;
    case "pairing":
      title = "Waiting for this browser to be approved";
      body = [
        h("p", "The secret was accepted, but this browser's device key is new to the gateway, and the gateway does not pair it by itself (the browser is not on the gateway host, or gateway.nodes.pairing.autoApproveLocal is off), so an operator must approve it once."),
        refusal.requestId ? h("p", "Request id: ", code(refusal.requestId)) : null,
        h("p", "Approve it from an already paired Control UI (Channels → Pending devices), or on the gateway host. This page retries by itself and connects as soon as the request is approved."),
      ];
      break;
    case "auth":
      title = "Sign-in refused";
      body = [
        h("p", "The gateway did not accept the secret. Paste the gateway token (", code("openclaw config get gateway.auth.token"), " on the gateway host) or type the password."),
        onSignIn ? h("button", { type: "button", on: { click: onSignIn } }, "Enter the secret again") : null,
      ];
      break;
    case "protocol":
      title = "Protocol mismatch";
      body = [h("p", "This page and the gateway speak different protocol versions. Reload the page (a cached old UI may still be running).")];
      break;
    default:
      title = state === "reconnecting" ? "Reconnecting" : "Connection refused";
      body = [h("p", "The gateway refused the connection. The UI keeps retrying.")];
  }
  return h("div.refusal", { dataset: { kind: refusal.kind } }, h("h2", title), body, said, retry);
}
