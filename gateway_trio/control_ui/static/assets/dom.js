// Small DOM helpers. Text always goes in as text nodes (never innerHTML), so nothing the gateway
// or a transcript sends can inject markup into the page.

/** Build an element: h("div.card#id", {attrs, on: {click}}, ...children). */
export function h(tag, props, ...children) {
  const name = tag.match(/^[a-z0-9-]*/i)[0];
  const el = document.createElement(name || "div");
  const classes = [];
  for (const [, sigil, word] of tag.slice(name.length).matchAll(/([.#])([^.#]+)/g)) {
    if (sigil === "#") el.id = word;
    else classes.push(word);
  }
  if (classes.length) el.className = classes.join(" ");
  if (props && (typeof props !== "object" || props instanceof Node || Array.isArray(props))) {
    children.unshift(props);
    props = null;
  }
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "on") {
      for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    } else if (key === "class") {
      el.className = [el.className, value].filter(Boolean).join(" ");
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else if (key === "value" || key === "checked" || key === "disabled" || key === "selected") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtAge(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${m % 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

export function fmtTime(ts) {
  if (!ts) return "–";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
}

export function fmtJson(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** A key/value definition list from [[label, value], ...] (value may be a Node). */
export function kv(rows) {
  return h(
    "dl.kv",
    rows.filter(Boolean).map(([k, v, id]) => [h("dt", k), h("dd", id ? { id } : null, v ?? "–")]),
  );
}

/** A table from column titles and rows (each row an array of cells; a cell may be a Node). */
export function table(columns, rows, { empty = "Nothing to show.", rowAttrs } = {}) {
  if (!rows.length) return h("p.muted", empty);
  return h(
    "table.grid",
    h("thead", h("tr", columns.map((c) => h("th", c)))),
    h(
      "tbody",
      rows.map((cells, i) => h("tr", rowAttrs ? rowAttrs(i) : null, cells.map((c) => h("td", c)))),
    ),
  );
}

/** The text of a transcript message's content (string, or parts with type "text"). */
export function messageText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .filter((p) => p && p.type === "text" && typeof p.text === "string")
      .map((p) => p.text)
      .join("\n");
  }
  if (content && typeof content === "object" && typeof content.text === "string") return content.text;
  return "";
}

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** A button that asks for a second click before it acts (no modal dialogs). */
export function confirmButton(label, confirmLabel, action, attrs = {}) {
  let armed = false;
  let timer = null;
  const btn = h("button.danger", {
    ...attrs,
    type: "button",
    on: {
      click: async () => {
        if (!armed) {
          armed = true;
          btn.textContent = confirmLabel;
          btn.classList.add("armed");
          timer = setTimeout(() => {
            armed = false;
            btn.textContent = label;
            btn.classList.remove("armed");
          }, 4000);
          return;
        }
        clearTimeout(timer);
        armed = false;
        btn.textContent = label;
        btn.classList.remove("armed");
        await action();
      },
    },
  }, label);
  return btn;
}
