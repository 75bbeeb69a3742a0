// Logs: a live tail of the gateway's file log (logs.tail polled with its byte cursor), with a
// minimum-level filter, a text search and pause.

import { h, mount } from "../dom.js";

export const id = "logs";
export const title = "Logs";

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];
const KEEP = 2000;
const POLL_MS = 1000;

/** One file-log line → {time, level, subsystem, message}; plain text lines pass through. */
export function parseLine(line) {
  try {
    const rec = JSON.parse(line);
    const meta = rec._meta || {};
    let subsystem = "";
    try {
      subsystem = JSON.parse(rec["0"] || meta.name || "{}").subsystem || "";
    } catch {
      subsystem = typeof rec["0"] === "string" ? rec["0"] : "";
    }
    const level = String(meta.logLevelName || rec.level || "info").toLowerCase();
    return { time: rec.time || meta.date || "", level, subsystem, message: String(rec.message ?? rec["1"] ?? line) };
  } catch {
    return { time: "", level: "info", subsystem: "", message: line };
  }
}

export function create(app) {
  let cursor = null;
  let lines = [];
  let paused = false;
  let timer = null;
  let alive = true;
  let inflight = false;
  let note = "";
  const level = h("select#logs-level", { on: { change: () => paint() } }, LEVELS.map((l) => h("option", { value: l, selected: l === "info" }, `≥ ${l}`)));
  const search = h("input#logs-search", { type: "search", placeholder: "filter text", on: { input: () => paint() } });
  const pauseBtn = h("button#logs-pause", { type: "button", on: { click: () => setPaused(!paused) } }, "Pause");
  const counter = h("span.muted#logs-count", "");
  const view = h("div.logview#logs-view");
  const el = h(
    "div.page.logs",
    h("div.toolbar", level, search, pauseBtn, h("button", { type: "button", on: { click: () => { lines = []; paint(); } } }, "Clear"), counter),
    view,
  );

  function setPaused(value) {
    paused = value;
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    pauseBtn.classList.toggle("armed", paused);
    counter.dataset.paused = String(paused);
    if (!paused) poll();
  }

  function visible() {
    const min = LEVELS.indexOf(level.value);
    const needle = search.value.trim().toLowerCase();
    return lines.filter((l) => {
      const idx = LEVELS.indexOf(l.level);
      if (idx >= 0 && idx < min) return false;
      return !needle || `${l.subsystem} ${l.message}`.toLowerCase().includes(needle);
    });
  }

  function paint() {
    const atBottom = view.scrollHeight - view.scrollTop - view.clientHeight < 40;
    const shown = visible();
    counter.textContent = `${shown.length} of ${lines.length} lines${paused ? " · paused" : ""}${note ? ` · ${note}` : ""}`;
    mount(
      view,
      shown.length
        ? shown.map((l) =>
            h(`div.logline.lvl-${l.level}`, h("span.t", l.time ? l.time.replace("T", " ").slice(0, 23) : ""), h("span.l", l.level), h("span.s", l.subsystem), h("span.m", l.message)),
          )
        : h("p.muted", lines.length ? "No line matches the filter." : "Waiting for log lines…"),
    );
    if (atBottom || !paused) view.scrollTop = view.scrollHeight;
  }

  async function poll() {
    clearTimeout(timer);
    if (!alive) return;
    if (!paused && !inflight && app.conn && app.conn.state === "connected") {
      inflight = true;
      try {
        const params = { limit: 500, maxBytes: 250000 };
        if (cursor !== null) params.cursor = cursor;
        const res = await app.call("logs.tail", params);
        if (res.reset && cursor !== null) note = res.truncated ? `skipped ${res.skippedBytes || 0} bytes` : "log restarted";
        cursor = res.cursor;
        if (res.lines && res.lines.length) {
          lines = lines.concat(res.lines.map(parseLine)).slice(-KEEP);
          paint();
        } else if (!lines.length) {
          paint();
        }
      } catch (err) {
        note = `logs.tail failed: ${err.message}`;
        paint();
      } finally {
        inflight = false;
      }
    }
    clearTimeout(timer); // one polling chain, however many callers
    if (alive) timer = setTimeout(poll, POLL_MS);
  }

  paint();
  return {
    el,
    refresh() {
      poll();
    },
    destroy() {
      alive = false;
      clearTimeout(timer);
    },
  };
}
