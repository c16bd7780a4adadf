// The page's router: one URL per view (so a link can be shared), rendered into <main>.
// A view module exports `render(root, params, ctx)`; it may return a cleanup function,
// and it should stop its work when `ctx.signal` aborts (the user went elsewhere).

import { del, get, whenUnauthenticated } from "./api.js";
import { errorBox, h, show } from "./ui.js";
import * as compare from "./views/compare.js";
import * as evaluation from "./views/evaluation.js";
import * as metrics from "./views/metrics.js";
import * as runs from "./views/runs.js";
import * as signin from "./views/signin.js";

const decode = decodeURIComponent;

// [pattern, view, params from the match]: the same paths the server answers with this page.
const ROUTES = [
  [/^\/$/, runs, () => ({})],
  [/^\/projects\/([^/]+)\/?$/, runs, (m) => ({ project: decode(m[1]) })],
  [/^\/runs\/([^/]+)\/?$/, metrics, (m) => ({ run: decode(m[1]) })],
  [/^\/runs\/([^/]+)\/metrics\/?$/, metrics, (m) => ({ run: decode(m[1]) })],
  [/^\/runs\/([^/]+)\/evaluation\/?$/, evaluation, (m) => ({ run: decode(m[1]) })],
  [/^\/compare\/?$/, compare, () => ({})],
  [/^\/sign-in\/?$/, signin, () => ({})],
];

const view = document.getElementById("view");
const crumbs = document.getElementById("crumbs");
let current = { controller: null, cleanup: null };

/** Goes to `href` inside the page (history entry unless `replace`). */
export function navigate(href, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  route();
}

/** The breadcrumb: [[text, href|null], ...] after the brand. */
function setCrumbs(items) {
  crumbs.replaceChildren(
    ...items.map(([text, href]) => h("span", {}, href ? h("a", { href }, text) : text)),
  );
}

function setTitle(text) {
  document.title = text ? `${text} · evalstream` : "evalstream";
}

async function route() {
  current.controller?.abort();
  try {
    current.cleanup?.();
  } catch (error) {
    console.warn("view cleanup failed", error);
  }
  const controller = new AbortController();
  current = { controller, cleanup: null };
  const path = location.pathname;
  const match = ROUTES.map(([re, module, params]) => [re.exec(path), module, params]).find(([m]) => m);
  setCrumbs([]);
  if (!match) {
    setTitle("Not found");
    show(view, h("h1", {}, "Not found"), h("p", {}, "No view at ", h("code", {}, path), ". ", h("a", { href: "/" }, "All runs")));
    return;
  }
  const [m, module, params] = match;
  const ctx = {
    query: new URLSearchParams(location.search),
    signal: controller.signal,
    navigate,
    setCrumbs,
    setTitle,
    refreshWho,
    /** Replaces the query string without a new history entry (filters, slider). */
    setQuery(values) {
      const query = new URLSearchParams(location.search);
      for (const [key, value] of Object.entries(values)) {
        query.delete(key);
        for (const v of Array.isArray(value) ? value : [value]) {
          if (v !== null && v !== undefined && v !== "") query.append(key, String(v));
        }
      }
      const text = query.toString();
      history.replaceState(null, "", `${location.pathname}${text ? `?${text}` : ""}`);
      ctx.query = query;
    },
  };
  show(view, h("p", { class: "muted" }, "Loading…"));
  try {
    const cleanup = await module.render(view, params(m), ctx);
    if (controller.signal.aborted) cleanup?.();
    else current.cleanup = cleanup || null;
  } catch (error) {
    if (controller.signal.aborted || error?.name === "AbortError") return;
    if (error?.status === 401) return; // whenUnauthenticated has moved to the sign-in page
    console.error(error);
    show(view, h("h1", {}, error?.status === 404 ? "Not found" : "Cannot show this page"), errorBox(error));
  }
}

// Links inside the page change the view without reloading it.
document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest("a[href]");
  if (!link || link.target || link.hasAttribute("download")) return;
  const target = new URL(link.href, location.href);
  if (target.origin !== location.origin || target.pathname.startsWith("/api/") || target.pathname.startsWith("/static/")) return;
  event.preventDefault();
  navigate(target.pathname + target.search + target.hash);
});
window.addEventListener("popstate", route);

whenUnauthenticated(() => {
  if (location.pathname === "/sign-in") return;
  const next = location.pathname + location.search;
  navigate(`/sign-in?next=${encodeURIComponent(next)}`, { replace: true });
});

// Theme: the system's preference until the user picks one, then the pick.
const themeButton = document.getElementById("theme");
function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  themeButton.setAttribute("aria-pressed", String(theme === "dark"));
  window.dispatchEvent(new CustomEvent("evalstream:theme", { detail: theme }));
}
const stored = localStorage.getItem("evalstream-theme");
applyTheme(stored || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
themeButton.addEventListener("click", () => {
  const theme = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  localStorage.setItem("evalstream-theme", theme);
  applyTheme(theme);
});

/** Shows who the browser is signed in as, with a sign-out button (nothing when tokens are off). */
export async function refreshWho() {
  const who = document.getElementById("who");
  try {
    const me = await get("session");
    if (me.name.startsWith("anonymous (")) {
      who.replaceChildren();
      return;
    }
    const signOut = h("button", { type: "button", class: "icon" }, "Sign out");
    signOut.addEventListener("click", async () => {
      await del("session").catch(() => null);
      who.replaceChildren();
      navigate("/sign-in");
    });
    who.replaceChildren(h("span", {}, `${me.name} · ${me.role} `), signOut);
  } catch {
    who.replaceChildren();
  }
}

refreshWho();
route();
