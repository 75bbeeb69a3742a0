// Sessions: list and search (sessions.list), preview (sessions.preview), reset, delete.

import { confirmButton, fmtAge, h, mount, table } from "../dom.js";

export const id = "sessions";
export const title = "Sessions";

export function create(app) {
  let rows = [];
  let total = 0;
  let preview = null;
  const search = h("input#sessions-search", { type: "search", placeholder: "search sessions", on: { input: () => debounce() } });
  const listBox = h("div#sessions-list");
  const previewBox = h("div.preview#sessions-preview");
  const el = h(
    "div.page.sessions",
    h("div.toolbar", search, h("button", { type: "button", on: { click: () => load() } }, "Refresh"), h("span.muted#sessions-count", "")),
    h("div.split", listBox, previewBox),
  );

  let timer = null;
  function debounce() {
    clearTimeout(timer);
    timer = setTimeout(load, 250);
  }

  async function act(method, key, done) {
    try {
      await app.call(method, { key });
      app.toast(done, "ok");
    } catch (err) {
      app.toast(`${method} failed: ${err.message}`, "error");
    }
    if (preview && preview.key === key) preview = null;
    await load();
  }

  async function showPreview(key) {
    try {
      const res = await app.call("sessions.preview", { keys: [key], limit: 20 });
      preview = (res.previews || [])[0] || { key, status: "missing", items: [] };
    } catch (err) {
      preview = { key, status: "error", items: [], error: err.message };
    }
    paint();
  }

  function paint() {
    el.querySelector("#sessions-count").textContent = `${rows.length} of ${total}`;
    mount(
      listBox,
      table(
        ["Session", "Label", "Updated", "Messages", "Model", ""],
        rows.map((r) => [
          h("code", r.key),
          r.label || "",
          fmtAge(r.age ?? Date.now() - (r.updatedAt || 0)),
          String(r.messageCount ?? "–"),
          [r.modelProvider, r.model].filter(Boolean).join("/") || "–",
          h("span.row-actions",
            h("button", { type: "button", dataset: { action: "preview" }, on: { click: () => showPreview(r.key) } }, "Preview"),
            h("button", { type: "button", on: { click: () => { sessionStorage.setItem("openclaw.control.chat.session", r.key); app.nav("/chat"); } } }, "Open"),
            confirmButton("Reset", "Really reset?", () => act("sessions.reset", r.key, `Reset ${r.key}`), { dataset: { action: "reset" } }),
            confirmButton("Delete", "Really delete?", () => act("sessions.delete", r.key, `Deleted ${r.key}`), { dataset: { action: "delete" } }),
          ),
        ]),
        { empty: search.value ? "No session matches." : "No sessions yet — send a chat first.", rowAttrs: (i) => ({ dataset: { key: rows[i].key } }) },
      ),
    );
    if (!preview) {
      mount(previewBox, h("p.muted", "Pick a session to preview its last messages."));
      return;
    }
    mount(
      previewBox,
      h("h3", "Preview ", h("code", preview.key)),
      preview.error ? h("p.error", preview.error) : null,
      preview.items.length
        ? preview.items.map((it) => h(`div.msg.${it.role}`, h("div.who", it.role), h("div.text", it.text)))
        : h("p.muted", preview.status === "missing" ? "This session no longer exists." : "No messages."),
    );
  }

  async function load() {
    const params = { limit: 200 };
    const q = search.value.trim();
    if (q) params.search = q;
    try {
      const res = await app.call("sessions.list", params);
      rows = res.sessions || [];
      total = res.totalCount ?? rows.length;
      // The gateway may not filter: filter here as well, by key, label and preview.
      if (q) {
        const needle = q.toLowerCase();
        rows = rows.filter((r) => [r.key, r.label, r.lastMessagePreview].some((v) => typeof v === "string" && v.toLowerCase().includes(needle)));
      }
    } catch (err) {
      rows = [];
      app.toast(`sessions.list failed: ${err.message}`, "error");
    }
    paint();
  }

  function onEvent(frame) {
    if (frame.event === "sessions.changed") debounce();
  }

  async function refresh() {
    try {
      await app.call("sessions.subscribe", {});
    } catch {
      // no live updates; Refresh still works
    }
    await load();
  }

  paint();
  return { el, refresh, onEvent, destroy() { clearTimeout(timer); } };
}
