// Chat: pick a session, read its history (chat.history), send (chat.send) and watch the reply
// stream in from `chat` delta events; Stop aborts the run (chat.abort).

import { fmtTime, h, messageText, mount, uuid } from "../dom.js";

export const id = "chat";
export const title = "Chat";

const SELECTED = "openclaw.control.chat.session";

/** The gateway's canonical form of a session key (agent:<id>:<rest>, lower-cased). */
export function canonicalKey(raw, defaultAgent = "main") {
  const key = (raw || "").trim();
  if (key.toLowerCase().startsWith("agent:")) {
    const parts = key.split(":");
    const agent = (parts[1] || defaultAgent).toLowerCase();
    const rest = parts.slice(2).join(":") || "main";
    return `agent:${agent}:${rest.toLowerCase()}`;
  }
  return `agent:${defaultAgent}:${key.toLowerCase() || "main"}`;
}

export function create(app) {
  const hello = () => (app.conn && app.conn.hello) || {};
  const defaults = () => (hello().snapshot && hello().snapshot.sessionDefaults) || {};
  const defaultAgent = () => defaults().defaultAgentId || "main";
  let sessionKey = sessionStorage.getItem(SELECTED) || defaults().mainSessionKey || "agent:main:main";
  let sessions = [];
  const runs = new Map(); // runId → {bubble, text, state}
  let activeRun = null;

  const picker = h("select#chat-session", { on: { change: () => select(picker.value) } });
  const newKey = h("input#chat-new-key", { placeholder: "new session name", size: 16 });
  const transcript = h("div.transcript#chat-transcript", { "aria-live": "polite" });
  const input = h("textarea#chat-input", { rows: 3, placeholder: "Message the agent (Enter to send, Shift+Enter for a new line)" });
  const sendBtn = h("button#chat-send", { type: "submit" }, "Send");
  const stopBtn = h("button.danger#chat-abort", { type: "button", disabled: true, on: { click: abort } }, "Stop");
  const status = h("span.muted#chat-status", "");
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      send();
    }
  });
  const el = h(
    "div.page.chat",
    h("div.toolbar",
      h("label", { for: "chat-session" }, "Session "),
      picker,
      h("form.inline", { on: { submit: (ev) => { ev.preventDefault(); if (newKey.value.trim()) { select(canonicalKey(newKey.value, defaultAgent())); newKey.value = ""; } } } },
        newKey, h("button", { type: "submit" }, "New")),
      h("button#chat-reload", { type: "button", on: { click: () => loadHistory() } }, "Reload history"),
      status,
    ),
    transcript,
    h("form.composer", { on: { submit: (ev) => { ev.preventDefault(); send(); } } }, input, h("div.actions", sendBtn, stopBtn)),
  );

  function paintPicker() {
    const keys = new Set(sessions.map((s) => s.key));
    keys.add(sessionKey);
    mount(picker, [...keys].map((k) => {
      const row = sessions.find((s) => s.key === k);
      return h("option", { value: k, selected: k === sessionKey }, row && row.label ? `${row.label} (${k})` : k);
    }));
  }

  function bubble(role, text, meta) {
    const body = h("div.text", text);
    const node = h(`div.msg.${role}`, h("div.who", role, meta ? h("span.muted", ` · ${meta}`) : null), body);
    transcript.append(node);
    transcript.scrollTop = transcript.scrollHeight;
    return { node, body };
  }

  function setActive(runId) {
    activeRun = runId;
    stopBtn.disabled = !runId;
    status.textContent = runId ? "streaming…" : "";
  }

  async function loadHistory() {
    try {
      const res = await app.call("chat.history", { sessionKey, limit: 200 });
      mount(transcript);
      for (const m of res.messages || []) {
        const text = messageText(m.content);
        if (!text && m.role !== "assistant") continue;
        bubble(m.role || "assistant", text, m.timestamp ? fmtTime(m.timestamp) : null);
      }
      if (!(res.messages || []).length) transcript.append(h("p.muted.empty#chat-empty", "No messages yet in this session."));
      // Runs this page watched that the transcript does not hold (still streaming, or stopped or
      // failed before an answer was stored) keep their bubbles at the end.
      const answered = (res.messages || []).filter((m) => m.role === "assistant" && m.__openclaw && m.__openclaw.runId);
      const stored = new Set(answered.map((m) => m.__openclaw.runId));
      for (const [runId, run] of runs) if (run.state !== "final" && !stored.has(runId)) transcript.append(run.bubble.node);
    } catch (err) {
      mount(transcript, h("p.error", `chat.history failed: ${err.message}`));
    }
  }

  async function loadSessions() {
    try {
      const res = await app.call("sessions.list", { limit: 200 });
      sessions = res.sessions || [];
    } catch {
      sessions = [];
    }
    paintPicker();
  }

  function select(key) {
    sessionKey = key;
    sessionStorage.setItem(SELECTED, key);
    runs.clear();
    setActive(null);
    paintPicker();
    loadHistory();
  }

  async function send() {
    const text = input.value.trim();
    if (!text || !app.conn || app.conn.state !== "connected") return;
    input.value = "";
    transcript.querySelector("#chat-empty")?.remove();
    bubble("user", text);
    const runId = uuid();
    const run = { bubble: bubble("assistant", ""), text: "", state: "streaming" };
    run.bubble.node.classList.add("streaming");
    run.bubble.node.dataset.runId = runId;
    runs.set(runId, run);
    setActive(runId);
    try {
      await app.call("chat.send", { sessionKey, message: text, idempotencyKey: runId });
    } catch (err) {
      run.state = "error";
      run.bubble.node.classList.remove("streaming");
      run.bubble.node.classList.add("failed");
      run.bubble.body.textContent = `Not sent: ${err.message}`;
      setActive(null);
    }
  }

  async function abort() {
    if (!activeRun) return;
    try {
      await app.call("chat.abort", { sessionKey, runId: activeRun });
    } catch (err) {
      app.toast(`chat.abort failed: ${err.message}`, "error");
    }
  }

  function onChat(p) {
    if (canonicalKey(p.sessionKey || "", defaultAgent()) !== canonicalKey(sessionKey, defaultAgent())) return;
    let run = runs.get(p.runId);
    if (!run) {
      // A run started elsewhere (another tab, a channel): show it too.
      run = { bubble: bubble("assistant", ""), text: "", state: "streaming", foreign: true };
      run.bubble.node.classList.add("streaming");
      run.bubble.node.dataset.runId = p.runId;
      runs.set(p.runId, run);
    }
    if (p.state === "delta") {
      run.deltas = (run.deltas || 0) + 1;
      run.bubble.node.dataset.deltas = String(run.deltas);
      run.text = p.replace ? p.deltaText || "" : run.text + (p.deltaText || "");
      run.bubble.body.textContent = run.text;
      transcript.scrollTop = transcript.scrollHeight;
      return;
    }
    if (p.state === "status") {
      status.textContent = p.phase ? `${p.phase.replace(/_/g, " ")}…` : status.textContent;
      return;
    }
    run.bubble.node.classList.remove("streaming");
    if (p.state === "final") {
      const finalText = p.message ? messageText(p.message.content) : "";
      run.text = finalText || run.text;
      run.bubble.body.textContent = run.text;
      run.state = "final";
      run.bubble.node.classList.add("done");
    } else if (p.state === "aborted") {
      run.state = "aborted";
      run.bubble.node.classList.add("aborted");
      run.bubble.node.append(h("div.note", "stopped"));
    } else if (p.state === "error") {
      run.state = "error";
      run.bubble.node.classList.add("failed");
      run.bubble.node.append(h("div.note.error", p.errorMessage || "the run failed"));
    }
    if (activeRun === p.runId) setActive(null);
    if (run.foreign) loadHistory();
  }

  let sessionsTimer = null;
  function onEvent(frame) {
    if (frame.event === "chat" && frame.payload) onChat(frame.payload);
    else if (frame.event === "sessions.changed") {
      clearTimeout(sessionsTimer);
      sessionsTimer = setTimeout(loadSessions, 300);
    }
  }

  async function refresh() {
    if (!sessionStorage.getItem(SELECTED) && defaults().mainSessionKey) sessionKey = defaults().mainSessionKey;
    try {
      await app.call("sessions.subscribe", {});
    } catch {
      // older gateways: no live session list, the Reload button still works
    }
    await loadSessions();
    await loadHistory();
  }

  paintPicker();
  return { el, refresh, onEvent, destroy() { clearTimeout(sessionsTimer); } };
}
