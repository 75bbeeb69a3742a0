// Config: a form generated from config.schema, or the raw JSON5 file. Before saving, the plan of
// what the edit will do per key (config.plan — the planner `openclaw config plan` uses: hot, read
// live, restart, or deferred), then config.set with the baseHash it was read at, then the applied
// result (config.plan of the file against the running config until nothing is left to apply).

import { fmtJson, h, mount } from "../dom.js";

export const id = "config";
export const title = "Config";

const REDACTED = "__OPENCLAW_REDACTED__";
const APPLY_WAIT_MS = 30000;

function deref(schema, node) {
  let guard = 0;
  while (node && node.$ref && guard++ < 32) node = (schema.$defs || {})[node.$ref.split("/").pop()];
  return node || {};
}

function getPath(obj, path) {
  let node = obj;
  for (const part of path) {
    if (!node || typeof node !== "object") return undefined;
    node = node[part];
  }
  return node;
}

/** Set (or with `undefined` delete) `path` in `obj`, pruning objects left empty. */
function setPath(obj, path, value) {
  const parents = [obj];
  let node = obj;
  for (const part of path.slice(0, -1)) {
    if (!node[part] || typeof node[part] !== "object" || Array.isArray(node[part])) {
      if (value === undefined) return;
      node[part] = {};
    }
    node = node[part];
    parents.push(node);
  }
  const last = path[path.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
  for (let i = path.length - 1; i > 0; i--) {
    const p = parents[i];
    if (p && typeof p === "object" && !Array.isArray(p) && !Object.keys(p).length) delete parents[i - 1][path[i - 1]];
    else break;
  }
}

/** The kind of input a schema node gets. */
function kindOf(schema, node) {
  const n = deref(schema, node);
  if (n.enum) return "enum";
  if (n.anyOf) {
    const kinds = n.anyOf.map((x) => deref(schema, x).type);
    if (kinds.includes("string")) return "string";
    if (kinds.includes("boolean")) return "boolean";
    return "json";
  }
  if (n.type === "object" && n.properties) return "object";
  if (n.type === "array" && deref(schema, n.items).type === "string") return "lines";
  if (["boolean", "integer", "number", "string"].includes(n.type)) return n.type;
  return "json";
}

export function create(app) {
  let schema = null;
  let loaded = null; // config.get payload
  let draft = {};
  let mode = "form";
  let lastPlan = null;
  let plannedText = null;
  let waiting = null; // {paths, until, sawRestart}
  let applyTimer = null;
  const filter = h("input#config-filter", { type: "search", placeholder: "find a key (e.g. rateLimit)", on: { input: () => paintForm() } });
  const formBox = h("div.cfgform#config-form");
  const rawBox = h("textarea.raw#config-raw", { spellcheck: false, rows: 24, on: { input: () => invalidatePlan() } });
  const planBox = h("div#config-plan");
  const resultBox = h("div#config-result");
  const previewBtn = h("button#config-preview", { type: "button", on: { click: () => preview() } }, "Preview changes");
  const saveBtn = h("button.primary#config-save", { type: "button", disabled: true, on: { click: () => save() } }, "Save");
  const tabs = h("div.tabs",
    h("button.tab#config-tab-form", { type: "button", on: { click: () => setMode("form") } }, "Form"),
    h("button.tab#config-tab-raw", { type: "button", on: { click: () => setMode("raw") } }, "Raw JSON5"),
  );
  const meta = h("p.muted#config-meta", "");
  const el = h("div.page.config",
    h("div.toolbar", tabs, filter, h("button", { type: "button", on: { click: () => load() } }, "Reload"), meta),
    h("div.cfgwrap", h("div.cfgedit", formBox, rawBox), h("aside.cfgside", h("div.actions", previewBtn, saveBtn), planBox, resultBox)),
  );

  function text() {
    return mode === "raw" ? rawBox.value : JSON.stringify(draft, null, 2);
  }

  function invalidatePlan() {
    if (plannedText !== null && plannedText !== text()) {
      lastPlan = null;
      plannedText = null;
      saveBtn.disabled = true;
      mount(planBox, h("p.muted", "Edited since the preview; preview again before saving."));
    }
  }

  function setMode(next) {
    if (next === mode) return;
    if (next === "raw") {
      rawBox.value = JSON.stringify(draft, null, 2);
    } else {
      mount(planBox, h("p.muted", "The form edits the parsed config; comments of the raw file are not kept."));
    }
    mode = next;
    paintMode();
    invalidatePlan();
  }

  function paintMode() {
    formBox.hidden = mode !== "form";
    filter.hidden = mode !== "form";
    rawBox.hidden = mode !== "raw";
    el.querySelector("#config-tab-form").classList.toggle("active", mode === "form");
    el.querySelector("#config-tab-raw").classList.toggle("active", mode === "raw");
  }

  function leaf(node, path, kind) {
    const key = path.join(".");
    const value = getPath(draft, path);
    const n = deref(schema, node);
    const set = (v) => {
      setPath(draft, path, v);
      invalidatePlan();
      row.classList.toggle("changed", JSON.stringify(getPath(draft, path)) !== JSON.stringify(getPath(loaded.parsed || {}, path)));
    };
    let input;
    if (value === REDACTED) {
      input = h("span.secret", "•••••• (kept; edit the raw file to replace it)");
    } else if (kind === "boolean") {
      input = h("select", { on: { change: () => set(input.value === "" ? undefined : input.value === "true") } },
        h("option", { value: "", selected: value === undefined }, "(default)"),
        h("option", { value: "true", selected: value === true }, "true"),
        h("option", { value: "false", selected: value === false }, "false"));
    } else if (kind === "enum") {
      input = h("select", { on: { change: () => set(input.value === "" ? undefined : JSON.parse(input.value)) } },
        h("option", { value: "", selected: value === undefined }, "(default)"),
        n.enum.map((opt) => h("option", { value: JSON.stringify(opt), selected: value === opt }, String(opt))));
    } else if (kind === "integer" || kind === "number") {
      input = h("input", { type: "number", step: kind === "integer" ? "1" : "any", value: value ?? "", min: n.minimum ?? undefined, max: n.maximum ?? undefined, on: { input: () => set(input.value === "" ? undefined : Number(input.value)) } });
    } else if (kind === "string") {
      input = h("input", { type: "text", value: typeof value === "string" ? value : "", placeholder: typeof value === "object" && value ? "(an object: edit it in the raw file)" : "", disabled: typeof value === "object" && value !== null, on: { input: () => set(input.value === "" ? undefined : input.value) } });
    } else if (kind === "lines") {
      input = h("textarea", { rows: 2, value: Array.isArray(value) ? value.join("\n") : "", placeholder: "one per line", on: { input: () => { const items = input.value.split("\n").map((s) => s.trim()).filter(Boolean); set(items.length ? items : undefined); } } });
    } else {
      input = h("textarea.json", { rows: 2, value: value === undefined ? "" : JSON.stringify(value, null, 1), placeholder: "JSON", on: { input: () => {
        if (!input.value.trim()) return set(undefined);
        try { set(JSON.parse(input.value)); input.classList.remove("bad"); } catch { input.classList.add("bad"); }
      } } });
    }
    input.dataset.path = key;
    const row = h("div.field", { dataset: { path: key } }, h("label", h("code", path[path.length - 1]), n.description ? h("span.muted", ` ${n.description}`) : null), input);
    return row;
  }

  function group(node, path, needle) {
    const n = deref(schema, node);
    const children = [];
    const untyped = []; // top-level sections this gateway passes through untyped: edited as JSON
    for (const [name, child] of Object.entries(n.properties || {})) {
      if (name === "$schema") continue;
      const sub = [...path, name];
      const kind = kindOf(schema, child);
      if (kind === "object") {
        const inner = group(child, sub, needle);
        if (inner) children.push(inner);
      } else if (!needle || sub.join(".").toLowerCase().includes(needle)) {
        (kind === "json" && !path.length ? untyped : children).push(leaf(child, sub, kind));
      }
    }
    if (untyped.length) {
      children.push(h("details.group", { open: Boolean(needle), dataset: { path: "(other)" } }, h("summary", `Other sections (${untyped.length}, JSON)`), untyped));
    }
    if (!children.length) return null;
    if (!path.length) return children;
    const open = Boolean(needle) || path.length === 0;
    return h("details.group", { open, dataset: { path: path.join(".") } }, h("summary", path[path.length - 1]), children);
  }

  function paintForm() {
    if (!schema || !loaded) return;
    const root = deref(schema, schema);
    const needle = filter.value.trim().toLowerCase();
    mount(formBox, group(root, [], needle) || h("p.muted", "No key matches."));
  }

  function paintPlan(plan) {
    const word = { hot: "applied in place", live: "read live", restart: "restart", deferred: "waits for a restart", none: "read live" };
    const summary = !plan.changes.length
      ? "No changes."
      : plan.restart
        ? `Saving restarts the gateway (${plan.restartPaths.join(", ") || "reload mode restart"}).`
        : plan.deferred.length
          ? `Not applied until a restart (reload mode ${plan.mode}): ${plan.deferred.join(", ")}.`
          : "Saving applies in place; no restart.";
    mount(
      planBox,
      h("h3", "Plan"),
      h("p#config-plan-summary", { dataset: { restart: String(plan.restart) } }, summary),
      plan.valid ? null : h("div.error", h("strong", "Invalid: "), plan.issues.map((i) => h("div", `${i.path || "<root>"}: ${i.message}`))),
      plan.changes.length
        ? h("table.grid.plan",
            h("thead", h("tr", h("th", "Key"), h("th", "Effect"), h("th", "Why"))),
            h("tbody", plan.changes.map((c) => h("tr", { dataset: { path: c.path, applies: c.applies } }, h("td", h("code", c.path)), h("td", h(`span.effect.${c.applies}`, word[c.applies] || c.applies)), h("td.muted", c.reason)))))
        : null,
      h("p.muted", `Reload mode: ${plan.mode}`),
    );
  }

  async function preview() {
    const proposed = text();
    try {
      const plan = await app.call("config.plan", { raw: proposed });
      lastPlan = plan;
      plannedText = proposed;
      paintPlan(plan);
      saveBtn.disabled = !plan.valid || !plan.changes.length;
      mount(resultBox);
    } catch (err) {
      mount(planBox, h("p.error", `config.plan failed: ${err.message}`));
      saveBtn.disabled = true;
    }
  }

  async function save() {
    if (!lastPlan || plannedText !== text()) return;
    saveBtn.disabled = true;
    const paths = lastPlan.changes.map((c) => c.path);
    try {
      const res = await app.call("config.set", { raw: plannedText, baseHash: loaded.hash || undefined });
      mount(resultBox, h("p#config-result-status", { dataset: { state: "written" } }, `Written (${(res.hash || "").slice(0, 12)}). Waiting for the gateway to apply it…`));
      waiting = { paths, until: Date.now() + APPLY_WAIT_MS, restart: lastPlan.restart, sawRestart: false };
      lastPlan = null;
      plannedText = null;
      pollApplied();
    } catch (err) {
      const stale = /changed since last load|base hash/.test(err.message);
      mount(resultBox, h("p.error#config-result-status", { dataset: { state: "failed" } }, `config.set failed: ${err.message}`), stale ? h("button", { type: "button", on: { click: () => load() } }, "Reload the config") : null);
    }
  }

  function pollLater() {
    clearTimeout(applyTimer);
    applyTimer = setTimeout(pollApplied, 500);
  }

  async function pollApplied() {
    clearTimeout(applyTimer);
    if (!waiting) return;
    if (Date.now() > waiting.until) {
      mount(resultBox, h("p.error#config-result-status", { dataset: { state: "timeout" } }, "Written, but the gateway has not applied it yet. Check Overview → Config reload and the logs."));
      waiting = null;
      return;
    }
    if (!app.conn || app.conn.state !== "connected") {
      waiting.sawRestart = true;
      pollLater();
      return;
    }
    try {
      const plan = await app.call("config.plan", {});
      if (!plan.changes.length) {
        const how = waiting.sawRestart || waiting.restart ? "after a gateway restart" : "in place, no restart";
        mount(resultBox,
          h("p.ok#config-result-status", { dataset: { state: "applied" } }, `Applied ${how}: `, waiting.paths.map((p, i) => [i ? ", " : "", h("code", p)])),
        );
        waiting = null;
        await load(true);
        return;
      }
      if (plan.deferred.length && !plan.restart && plan.changes.every((c) => c.applies === "deferred")) {
        mount(resultBox, h("p.warn#config-result-status", { dataset: { state: "deferred" } }, `Written; waiting for a restart to apply: ${plan.deferred.join(", ")}.`));
        waiting = null;
        await load(true);
        return;
      }
    } catch {
      // reconnecting: try again
    }
    pollLater();
  }

  async function load(keepResult = false) {
    try {
      const [cfg, sch] = await Promise.all([app.call("config.get", {}), schema ? Promise.resolve(schema) : app.call("config.schema", {})]);
      loaded = cfg;
      schema = sch;
      draft = structuredClone(cfg.parsed || {});
      rawBox.value = cfg.raw ?? fmtJson(cfg.parsed || {});
      meta.textContent = `${cfg.path || ""}${cfg.valid === false ? " · INVALID" : ""} · hash ${(cfg.hash || "none").slice(0, 12)}`;
      lastPlan = null;
      plannedText = null;
      saveBtn.disabled = true;
      if (!keepResult) {
        mount(resultBox);
        mount(planBox, h("p.muted", "Edit a value, then preview what saving will do."));
      }
      paintForm();
    } catch (err) {
      mount(formBox, h("p.error", `Could not load the config: ${err.message}`));
    }
  }

  paintMode();
  return {
    el,
    refresh() {
      if (waiting) pollApplied();
      else load();
    },
    destroy() {
      waiting = null;
      clearTimeout(applyTimer);
    },
  };
}
