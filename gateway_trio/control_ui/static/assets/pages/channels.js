// Channels: per-account status (channels.status, with an on-demand probe), pending DM pairing
// requests (channels.pairing.*) and pending device pairings (device.pair.*), each with Approve.
// Anything the gateway does not implement yet is shown as such rather than as an error.

import { fmtAge, fmtJson, h, mount, table } from "../dom.js";

export const id = "channels";
export const title = "Channels";

function unavailable(err) {
  return err && (err.code === "UNAVAILABLE" || /not implemented|unknown method/.test(err.message || ""));
}

export function create(app) {
  let status = null;
  let statusError = null;
  let dm = null;
  let dmError = null;
  let devices = null;
  let devicesError = null;
  let probing = false;
  const el = h("div.page.channels");

  /** One pairing decision, then a fresh listing (the gateway is the source of truth). */
  async function act(method, params, done) {
    try {
      await app.call(method, params);
      app.toast(done, "ok");
    } catch (err) {
      app.toast(`${method} failed: ${err.message}`, "error");
    }
    await loadPairing();
  }

  const approveDevice = (requestId) => act("device.pair.approve", { requestId }, `Approved device request ${requestId}`);
  const rejectDevice = (requestId) => act("device.pair.reject", { requestId }, `Rejected device request ${requestId}`);
  const approveDm = (req) =>
    act("channels.pairing.approve", { channel: req.channel, accountId: req.accountId, requestId: req.requestId },
      `Approved ${req.senderLabel || req.senderId} on ${req.channelLabel || req.channel}`);

  function accountsTable() {
    if (statusError) return h("p.error", `channels.status failed: ${statusError}`);
    if (!status) return h("p.muted", "Loading…");
    const order = status.channelOrder && status.channelOrder.length ? status.channelOrder : Object.keys(status.channelAccounts || {});
    const rows = [];
    for (const ch of order) {
      const label = (status.channelLabels || {})[ch] || ch;
      const accounts = (status.channelAccounts || {})[ch] || [];
      if (!accounts.length) rows.push([label, "–", "no accounts", "", "", ""]);
      for (const a of accounts) {
        const state = a.connected ? "connected" : a.running ? "running" : a.enabled === false ? "disabled" : a.configured === false ? "not configured" : "stopped";
        rows.push([
          label,
          a.name ? `${a.name} (${a.accountId})` : a.accountId,
          h(`span.state`, { dataset: { state } }, state),
          a.healthState || "–",
          a.lastInboundAt ? fmtAge(Date.now() - a.lastInboundAt) + " ago" : "–",
          a.lastError || (a.probe && Object.keys(a.probe).length ? fmtJson(a.probe) : ""),
        ]);
      }
    }
    return [
      table(["Channel", "Account", "State", "Health", "Last inbound", "Error / probe"], rows, { empty: "No channels are configured on this gateway." }),
      (status.statusIssues || []).length
        ? h("div.issues", h("h3", "Issues"), status.statusIssues.map((i) => h("div.issue", h("strong", `${i.channel}:${i.accountId} `), `[${i.kind}] ${i.message}`, i.fix ? h("div.muted", i.fix) : null)))
        : null,
    ];
  }

  function devicePending() {
    if (devicesError) return h("p.muted", unavailable(devicesError) ? "This gateway does not list device pairings." : `device.pair.list failed: ${devicesError.message}`);
    if (!devices) return h("p.muted", "Loading…");
    return table(
      ["Request", "Device", "Client", "Role / scopes", "From", "Asked", ""],
      (devices.pending || []).map((r) => [
        h("code", r.requestId),
        h("code", (r.deviceId || "").slice(0, 16)),
        `${r.clientId || "–"} / ${r.clientMode || "–"}`,
        `${r.role || "operator"} · ${(r.scopes || []).join(", ")}`,
        r.remoteIp || "–",
        r.ts ? fmtAge(Date.now() - r.ts) + " ago" : "–",
        h("span.row-actions",
          h("button.primary", { type: "button", dataset: { approve: r.requestId }, on: { click: () => approveDevice(r.requestId) } }, "Approve"),
          h("button", { type: "button", on: { click: () => rejectDevice(r.requestId) } }, "Reject")),
      ]),
      { empty: "No device is waiting for approval." },
    );
  }

  function dmPending() {
    if (dmError) return h("p.muted", unavailable(dmError) ? "DM pairing is not available on this gateway yet." : `channels.pairing.list failed: ${dmError.message}`);
    if (!dm) return h("p.muted", "Loading…");
    return table(
      ["Channel", "Account", "Sender", "Asked", "Expires", ""],
      (dm.requests || []).map((r) => [
        r.channelLabel || r.channel,
        r.accountLabel || r.accountId,
        r.senderLabel || r.senderId,
        r.createdAt || "–",
        r.expiresAt || "–",
        h("button.primary", { type: "button", on: { click: () => approveDm(r) } }, "Approve"),
      ]),
      { empty: "No DM access request is pending." },
    );
  }

  function paint() {
    mount(
      el,
      h("div.toolbar",
        h("button#channels-probe", { type: "button", disabled: probing, on: { click: () => loadStatus(true) } }, probing ? "Probing…" : "Probe accounts"),
        h("button", { type: "button", on: { click: () => refresh() } }, "Refresh"),
        status && status.ts ? h("span.muted", `as of ${new Date(status.ts).toLocaleTimeString()}`) : null),
      h("section.card.wide", h("h2", "Accounts"), accountsTable()),
      h("section.card.wide", h("h2", "Pending devices"), devicePending()),
      h("section.card.wide", h("h2", "Pending DM access"), dmPending()),
    );
  }

  async function loadStatus(probe = false) {
    probing = probe;
    if (probe) paint();
    try {
      status = await app.call("channels.status", probe ? { probe: true, timeoutMs: 8000 } : {}, { timeoutMs: 20000 });
      statusError = null;
    } catch (err) {
      statusError = err.message;
    }
    probing = false;
    paint();
  }

  async function loadPairing() {
    const [d, c] = await Promise.allSettled([app.call("device.pair.list", {}), app.call("channels.pairing.list", {})]);
    devices = d.status === "fulfilled" ? d.value : null;
    devicesError = d.status === "rejected" ? d.reason : null;
    dm = c.status === "fulfilled" ? c.value : null;
    dmError = c.status === "rejected" ? c.reason : null;
    paint();
  }

  async function refresh() {
    await Promise.all([loadStatus(false), loadPairing()]);
  }

  function onEvent(frame) {
    if (frame.event && frame.event.startsWith("device.pair.")) loadPairing();
  }

  paint();
  return { el, refresh, onEvent };
}
