// Debug: a manual RPC console (any advertised method, JSON params) and the live event stream.

import { fmtJson, h, mount } from "../dom.js";

export const id = "debug";
export const title = "Debug";

const KEEP = 300;

export function create(app) {
  const events = [];
  let paused = false;
  const methods = h("datalist#debug-methods");
  const method = h("input#debug-method", { list: "debug-methods", placeholder: "method, e.g. health", value: "health" });
  const params = h("textarea#debug-params", { rows: 6, spellcheck: false, placeholder: "params as JSON (optional)" }, "");
  const output = h("pre.out#debug-output", "");
  const filter = h("input#debug-filter", { type: "search", placeholder: "filter events", on: { input: () => paintEvents() } });
  const pauseBtn = h("button#debug-pause", { type: "button", on: { click: () => { paused = !paused; pauseBtn.textContent = paused ? "Resume" : "Pause"; } } }, "Pause");
  const list = h("div.events#debug-events");
  const helloBox = h("pre.out.small#debug-hello", "");

  async function run(ev) {
    ev.preventDefault();
    let p;
    const raw = params.value.trim();
    if (raw) {
      try {
        p = JSON.parse(raw);
      } catch (err) {
        output.dataset.ok = "false";
        output.textContent = `params are not JSON: ${err.message}`;
        return;
      }
    }
    const started = performance.now();
    try {
      const res = await app.call(method.value.trim(), p, { timeoutMs: 60000 });
      output.dataset.ok = "true";
      output.textContent = `ok in ${Math.round(performance.now() - started)} ms\n${fmtJson(res)}`;
    } catch (err) {
      output.dataset.ok = "false";
      output.textContent = `error ${err.code || ""}: ${err.message}\n${fmtJson(err.details)}`;
    }
  }

  function paintEvents() {
    const needle = filter.value.trim().toLowerCase();
    const shown = events.filter((e) => !needle || e.event.toLowerCase().includes(needle) || e.text.toLowerCase().includes(needle));
    mount(list, shown.length ? shown.slice().reverse().map((e) => h("div.event", h("span.seq", e.seq ?? "–"), h("span.name", e.event), h("span.muted", e.at), h("code.payload", e.text))) : h("p.muted", "No events yet."));
  }

  const el = h(
    "div.page.debug",
    h("section.card.wide",
      h("h2", "Manual RPC"),
      h("form.rpc", { on: { submit: run } }, methods, method, params, h("button#debug-call", { type: "submit" }, "Call")),
      output),
    h("section.card.wide", h("h2", "Event stream"), h("div.toolbar", filter, pauseBtn, h("button", { type: "button", on: { click: () => { events.length = 0; paintEvents(); } } }, "Clear")), list),
    h("details.card.wide", h("summary", "hello-ok"), helloBox),
  );

  function refresh() {
    const hello = (app.conn && app.conn.hello) || {};
    mount(methods, ((hello.features && hello.features.methods) || []).map((m) => h("option", { value: m })));
    helloBox.textContent = fmtJson(hello);
  }

  function onEvent(frame) {
    if (paused) return;
    const text = JSON.stringify(frame.payload ?? null);
    events.push({ event: frame.event, seq: frame.seq, at: new Date().toLocaleTimeString(), text: text.length > 400 ? `${text.slice(0, 400)}…` : text });
    if (events.length > KEEP) events.splice(0, events.length - KEEP);
    paintEvents();
  }

  paintEvents();
  return { el, refresh, onEvent };
}
