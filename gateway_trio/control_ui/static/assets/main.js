// The Control UI shell: sign-in, the one gateway connection, navigation, and the pages.
//
// Security rules kept here: the UI connects only to the gateway that served this page (the URL is
// built from location, never from a query parameter — cf. CVE-2026-25253); a `#token=` fragment or
// `?token=` parameter is taken once, moved to sessionStorage and stripped from the address bar; the
// secret is never put in any URL and never sent anywhere but that gateway's WebSocket.

import { GatewayConnection } from "./gateway.js";
import { h, mount } from "./dom.js";
import { explainRefusal, insecureNote } from "./explain.js";
import { identityUnavailableReason } from "./device.js";
import * as overview from "./pages/overview.js";
import * as chat from "./pages/chat.js";
import * as sessions from "./pages/sessions.js";
import * as channels from "./pages/channels.js";
import * as logs from "./pages/logs.js";
import * as config from "./pages/config.js";
import * as debug from "./pages/debug.js";

const PAGES = [overview, chat, sessions, channels, logs, config, debug];
const base = document.documentElement.getAttribute("data-openclaw-control-ui-base-path") || "";
const SECRET_KEY = `openclaw.control.secret.v1:${location.origin}${base}`;

// ------------------------------------------------------------------ credentials and the URL

function takeUrlCredential() {
  const url = new URL(location.href);
  const fragment = new URLSearchParams(url.hash.startsWith("#") ? url.hash.slice(1) : "");
  const secret = fragment.get("token") || fragment.get("password") || url.searchParams.get("token") || url.searchParams.get("password");
  const ignoredGatewayUrl = url.searchParams.get("gatewayUrl") || fragment.get("gatewayUrl");
  let changed = false;
  for (const name of ["token", "password", "gatewayUrl"]) {
    if (url.searchParams.has(name)) {
      url.searchParams.delete(name);
      changed = true;
    }
    if (fragment.has(name)) {
      fragment.delete(name);
      changed = true;
    }
  }
  if (changed) {
    const rest = fragment.toString();
    url.hash = rest ? `#${rest}` : "";
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  }
  return { secret, ignoredGatewayUrl };
}

const creds = {
  get: () => sessionStorage.getItem(SECRET_KEY),
  set: (value) => sessionStorage.setItem(SECRET_KEY, value),
  clear: () => sessionStorage.removeItem(SECRET_KEY),
};

const DEVICE_TOKEN_PREFIX = "openclaw.control.deviceToken.v1:";

function deviceTokenKeys() {
  return Object.keys(localStorage).filter((k) => k.startsWith(DEVICE_TOKEN_PREFIX));
}

function gatewayUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${base}/`;
}

// ------------------------------------------------------------------ the app object pages use

const app = {
  base,
  conn: null,
  page: null,
  toast(text, kind = "info") {
    const box = document.getElementById("toasts");
    if (!box) return;
    const item = h(`div.toast.${kind}`, { role: "status" }, text);
    box.append(item);
    setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
  },
  nav(path) {
    history.pushState(null, "", `${base}${path}`);
    render();
  },
  call(method, params, opts) {
    return app.conn.request(method, params, opts);
  },
};
window.__openclawControl = app; // for the debug console and tests

// ------------------------------------------------------------------ layout

let shell = null;
let pageBox = null;
let noticeBox = null;
let pill = null;

function currentPage() {
  const rel = location.pathname.startsWith(base) ? location.pathname.slice(base.length) : location.pathname;
  const name = rel.replace(/^\/+|\/+$/g, "").split("/")[0] || "overview";
  return PAGES.find((p) => p.id === name) || overview;
}

function buildShell() {
  pill = h("span.pill#conn-state", { dataset: { state: "idle" } }, "idle");
  noticeBox = h("div#notice");
  pageBox = h("section#page");
  const nav = h(
    "nav.side",
    h("div.brand", h("img", { src: document.querySelector("link[rel=icon]").href, alt: "" }), h("span", "OpenClaw")),
    PAGES.map((p) =>
      h("a.navlink", {
        href: `${base}/${p.id}`,
        id: `nav-${p.id}`,
        on: {
          click: (ev) => {
            ev.preventDefault();
            app.nav(`/${p.id}`);
          },
        },
      }, p.title),
    ),
    h("div.navfoot", h("button.link#sign-out", { type: "button", on: { click: signOut } }, "Sign out")),
  );
  const top = h("header.top", h("h1#page-title", ""), h("div.status", pill));
  shell = h("div.shell", nav, h("main", top, noticeBox, pageBox), h("div#toasts"));
  mount(document.getElementById("app"), shell);
  document.getElementById("app").className = "";
}

function render() {
  if (!shell) return;
  const Page = currentPage();
  document.getElementById("page-title").textContent = Page.title;
  for (const link of shell.querySelectorAll(".navlink")) link.classList.toggle("active", link.id === `nav-${Page.id}`);
  if (app.page && app.page.id === Page.id) return;
  if (app.page && app.page.destroy) app.page.destroy();
  const instance = Page.create(app);
  instance.id = Page.id;
  app.page = instance;
  mount(pageBox, instance.el);
  if (app.conn && app.conn.state === "connected") instance.refresh?.();
}

function showLogin(message) {
  if (app.conn) app.conn.stop();
  const input = h("input#login-secret", { type: "password", autocomplete: "current-password", placeholder: "gateway token or password" });
  const form = h(
    "form.login",
    {
      on: {
        submit: (ev) => {
          ev.preventDefault();
          const value = input.value.trim();
          if (!value) return;
          creds.set(value);
          start();
        },
      },
    },
    h("h1", "OpenClaw Control"),
    h("p", "Paste the gateway token, or type the gateway password. It is kept in this tab only (session storage) and sent only to this gateway: ", h("code", location.host), "."),
    message ? h("p.error#login-error", message) : null,
    h("label", { for: "login-secret" }, "Gateway secret"),
    input,
    h("button#login-submit", { type: "submit" }, "Connect"),
    h("p.muted", "On the gateway host: ", h("code", "openclaw config get gateway.auth.token"), "."),
  );
  shell = null;
  app.page = null;
  mount(document.getElementById("app"), h("div.login-wrap", form));
  document.getElementById("app").className = "";
  input.focus();
}

function signOut() {
  creds.clear();
  for (const key of deviceTokenKeys()) localStorage.removeItem(key);
  showLogin("Signed out.");
}

// ------------------------------------------------------------------ connection state on screen

function paintState() {
  const conn = app.conn;
  if (!pill || !conn) return;
  const state = conn.state;
  pill.dataset.state = state;
  pill.textContent = state === "reconnecting" && conn.attempt ? `reconnecting (${conn.attempt})` : state;
  const notices = [];
  const refusal = (state === "refused" || state === "pairing") && conn.refusal;
  if (identityUnavailableReason() && state !== "connected" && !(refusal && refusal.kind === "insecure")) {
    notices.push(insecureNote());
  }
  if (refusal) {
    notices.push(
      explainRefusal(conn.refusal, {
        state,
        onRetry: () => conn.retry(),
        onSignIn: () => {
          creds.clear();
          showLogin(conn.refusal.message);
        },
      }),
    );
  } else if (state === "reconnecting") {
    const why = conn.lastClose && conn.lastClose.code === 1012 ? "The gateway is restarting." : "The connection to the gateway was lost.";
    notices.push(h("div.banner.warn#reconnect-banner", why, " Reconnecting… ", h("button.link", { type: "button", on: { click: () => conn.retry() } }, "now")));
  }
  mount(noticeBox, notices);
}

function start() {
  if (!shell) buildShell();
  if (app.conn) app.conn.stop();
  if (app.page && app.page.destroy) app.page.destroy();
  app.page = null; // pages listen to one connection: make them again for the new one
  const conn = new GatewayConnection({ url: gatewayUrl(), getSecret: creds.get });
  app.conn = conn;
  conn.addEventListener("state", () => {
    paintState();
    // Refused without a secret of our own (a stale device token): ask for the secret.
    if (conn.state === "refused" && conn.refusal && conn.refusal.kind === "auth" && !creds.get()) showLogin(conn.refusal.message);
  });
  conn.addEventListener("hello", (ev) => {
    if (app.connectedAt === undefined) app.connectedAt = performance.now(); // for bench/control_ui.py
    if (ev.detail.reconnect) app.toast("Reconnected to the gateway; refreshed.", "ok");
    app.page?.refresh?.();
  });
  conn.addEventListener("gap", (ev) => {
    // A sequence gap means events were dropped (we were slow): refetch, do not alarm.
    app.toast(`Missed ${ev.detail.received - ev.detail.expected} event(s); refreshed.`, "info");
    app.page?.refresh?.();
  });
  conn.addEventListener("gateway-event", (ev) => app.page?.onEvent?.(ev.detail));
  render();
  paintState();
  conn.start();
}

window.addEventListener("popstate", render);

function boot() {
  const { secret, ignoredGatewayUrl } = takeUrlCredential();
  if (secret) creds.set(secret);
  buildShell();
  if (ignoredGatewayUrl) {
    app.toast("Ignored gatewayUrl: this UI connects only to the gateway that served it.", "warn");
  }
  if (!creds.get() && !deviceTokenKeys().length) {
    showLogin();
    return;
  }
  start();
}

boot();
