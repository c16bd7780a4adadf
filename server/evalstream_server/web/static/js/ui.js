// Small DOM helpers shared by the views: an element builder, formatting, badges and
// error boxes. No framework: the views are plain functions of the API's answers.

/**
 * h("a", {href: "/"}, "text", child, ...): an element. Attributes starting with "on"
 * are listeners; `class`, `style` (a string) and boolean attributes work as in HTML;
 * null, undefined and false children are skipped; arrays are flattened.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(key, "");
    } else {
      element.setAttribute(key, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** A number for a table: up to 4 significant digits, NaN and infinities spelled out. */
export function fmt(value, digits = 4) {
  if (value === null || value === undefined || value === "") return "";
  const n = Number(value);
  if (Number.isNaN(n)) return "NaN";
  if (!Number.isFinite(n)) return n > 0 ? "+inf" : "-inf";
  if (Number.isInteger(n) && Math.abs(n) < 1e15) return n.toLocaleString("en-US");
  const abs = Math.abs(n);
  // 3e-4, not 3.000e-4: trailing zeros of the mantissa dropped.
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return n.toExponential(digits - 1).replace(/\.?0+e/, "e");
  return String(Number(n.toPrecision(digits)));
}

/** A hyperparameter or summary value, as sent: {float_value}, {int_value}, {string_value} or {bool_value}. */
export function hyper(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object") return String(value);
  if ("float_value" in value) return fmt(value.float_value, 6);
  if ("int_value" in value) return fmt(value.int_value);
  if ("string_value" in value) return value.string_value;
  if ("bool_value" in value) return String(value.bool_value);
  return "";
}

/** A date from an RFC 3339 string, in the browser's time zone. */
export function when(text) {
  if (!text) return "";
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toLocaleString();
}

// Badge classes by verdict diagnosis, checkpoint grade, run status and quality band.
const TONES = {
  healthy: "ok", finished: "ok", excellent: "ok", good: "ok",
  underfitting: "warn", unstable: "warn", overfitting: "warn", running: "info", fair: "warn",
  not_learning: "bad", diverged: "bad", failed: "bad", killed: "bad", severe: "bad", poor: "bad",
  insufficient_data: "none", unspecified: "none",
};

/** The tone (ok, warn, bad, info, none) of a diagnosis, grade, status or band name. */
export function tone(name) {
  return TONES[String(name || "").toLowerCase()] || "none";
}

export function badge(name, title) {
  const text = String(name || "none").replaceAll("_", " ");
  return h("span", { class: `badge ${tone(name)}`, title: title || null }, text);
}

/** A table: `columns` as [{title, value(row) -> node|string, num?}], `rows` as data. */
export function table(columns, rows, { caption, rowAttrs } = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "muted" }, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null, scope: "col" }, c.title)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.value(row)))),
        ),
      ),
    ),
  );
}

/** An error box naming the refused field when the API named one. */
export function errorBox(error) {
  const field = error?.field ? h("span", { class: "field" }, `${error.field}: `) : null;
  const code = error?.code ? h("span", { class: "muted" }, ` (${error.code})`) : null;
  return h("div", { class: "error", role: "alert" }, field, error?.message || String(error), code);
}

/** Replaces the children of `root`. */
export function show(root, ...children) {
  root.replaceChildren();
  append(root, children);
}
