// Overview: the connection, the gateway (version, uptime), config reload state, health, presence.

import { fmtAge, fmtTime, h, kv, mount, table } from "../dom.js";

export const id = "overview";
export const title = "Overview";

export function create(app) {
  const el = h("div.page.overview");
  let health = null;
  let presence = null;
  let error = null;

  function uptime() {
    const hello = app.conn && app.conn.hello;
    if (!hello || !hello.snapshot) return null;
    return (hello.snapshot.uptimeMs || 0) + (Date.now() - app.conn.helloAt);
  }

  function paint() {
    const conn = app.conn;
    const hello = (conn && conn.hello) || {};
    const snap = hello.snapshot || {};
    const auth = hello.auth || {};
    const reload = (health && health.configReload) || (snap.health && snap.health.configReload) || {};
    const rows = (presence || snap.presence || []).slice().sort((a, b) => (b.ts || 0) - (a.ts || 0));
    const agents = (health && health.agents) || [];
    mount(
      el,
      h("div.cards",
        h("section.card",
          h("h2", "Connection"),
          kv([
            ["State", h("span.state", { dataset: { state: conn ? conn.state : "idle" } }, conn ? conn.state : "idle"), "ov-state"],
            ["Gateway", conn ? conn.url : "–"],
            ["Auth", auth.method ? `${auth.method} · ${auth.role}` : "–"],
            ["Scopes", (auth.scopes || []).join(", ") || "none"],
            ["Device", conn && conn.identity && conn.identity.id ? conn.identity.id.slice(0, 16) + "…" : (conn && conn.identity && conn.identity.unavailable) || "–"],
            ["Connection id", (hello.server && hello.server.connId) || "–"],
          ]),
        ),
        h("section.card",
          h("h2", "Gateway"),
          kv([
            ["Version", (hello.server && hello.server.version) || "–", "ov-version"],
            ["Uptime", fmtAge(uptime()), "ov-uptime"],
            ["Protocol", hello.protocol ? String(hello.protocol) : "–"],
            ["Auth mode", snap.authMode || "–"],
            ["Config file", snap.configPath || "–"],
            ["Default agent", (snap.sessionDefaults && snap.sessionDefaults.defaultAgentId) || "–"],
          ]),
        ),
        h("section.card",
          h("h2", "Config reload"),
          kv([
            ["Hot reload", reload.hotReloadStatus || "–", "ov-reload"],
            ["Mode", reload.mode || "–", "ov-reload-mode"],
            ["Last error", reload.lastError || "none"],
          ]),
        ),
        h("section.card",
          h("h2", "Health"),
          health
            ? kv([
                ["Status", health.ok ? "ok" : "degraded", "ov-health"],
                ["Checked", fmtTime(health.ts)],
                ["Sessions", String((health.sessions && health.sessions.count) ?? 0)],
                ["Agents", agents.map((a) => a.agentId + (a.isDefault ? " (default)" : "")).join(", ") || "–"],
                ["Heartbeat", health.heartbeatSeconds ? `every ${health.heartbeatSeconds}s` : "off"],
                ["Channels", String(Object.keys(health.channels || {}).length)],
              ])
            : h("p.muted", error ? `Health unavailable: ${error}` : conn && conn.state === "connected" ? "Loading…" : "Not connected."),
        ),
      ),
      h("section.card.wide",
        h("h2", `Presence (${rows.length})`),
        table(
          ["Client", "Mode", "Host / IP", "Version", "Platform", "Reason", "Seen"],
          rows.map((r) => [r.clientId || (r.mode === "gateway" ? "gateway" : "–"), r.mode || "–", [r.host, r.ip].filter(Boolean).join(" · ") || "–", r.version || "–", r.platform || "–", r.reason || "–", fmtAge(Date.now() - (r.ts || Date.now()))]),
          { empty: "No presence rows." },
        ),
      ),
    );
  }

  async function refresh() {
    error = null;
    try {
      const [hp, pp] = await Promise.all([app.call("health"), app.call("system-presence")]);
      health = hp;
      presence = Array.isArray(pp) ? pp : (pp && pp.presence) || presence;
    } catch (err) {
      error = err.message;
    }
    paint();
  }

  function onEvent(frame) {
    if (frame.event === "presence" && frame.payload && Array.isArray(frame.payload.presence)) {
      presence = frame.payload.presence;
      paint();
    } else if (frame.event === "health" && frame.payload) {
      health = frame.payload;
      paint();
    }
  }

  const onState = () => paint();
  app.conn && app.conn.addEventListener("state", onState);
  const ticker = setInterval(() => {
    const cell = el.querySelector("#ov-uptime");
    if (cell) cell.textContent = fmtAge(uptime());
  }, 1000);
  paint();
  return {
    el,
    refresh,
    onEvent,
    destroy() {
      clearInterval(ticker);
      app.conn && app.conn.removeEventListener("state", onState);
    },
  };
}
