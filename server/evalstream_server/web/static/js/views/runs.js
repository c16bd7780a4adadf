// The runs view: every project the caller can read with its runs (`/`), or one project
// (`/projects/{project}`): status, verdict, last step, best checkpoint; filters and the
// page token kept in the URL so that a link shows the same list.
import { get, num } from "../api.js";
import { badge, errorBox, fmt, h, show, table, when } from "../ui.js";

const STATUSES = ["running", "finished", "failed", "killed"];

function filters(ctx) {
  return {
    status: ctx.query.getAll("status"),
    name: ctx.query.get("name") || "",
    model: ctx.query.get("model") || "",
  };
}

function bestCell(verdict) {
  const es = verdict?.early_stopping;
  if (!es) return h("span", { class: "muted" }, "—");
  if (es.best_step === undefined || es.best_step === null) {
    return h("span", { class: "muted", title: `no value of ${es.monitor} yet` }, `— (${es.monitor}: none yet)`);
  }
  return h(
    "span",
    { title: es.best_checkpoint_path || null },
    `step ${fmt(es.best_step)} · ${es.monitor} ${fmt(num(es.best_value))} `,
    es.should_stop ? h("span", { class: "badge warn", title: "patience exhausted: stop here" }, "stop") : null,
  );
}

function runsTable(runs, verdicts, selection) {
  const byId = new Map((verdicts || []).map((v) => [v.run_id, v]));
  const pick = (r) => {
    const box = h("input", { type: "checkbox", class: "pick", "aria-label": `Select ${r.name} to compare`, checked: selection.has(r.id) });
    box.addEventListener("change", () => selection.toggle(r.id, box.checked));
    return box;
  };
  return table(
    [
      { title: h("span", { class: "visually-hidden" }, "Select"), value: pick },
      { title: "Run", value: (r) => h("a", { href: `/runs/${encodeURIComponent(r.id)}` }, r.name) },
      { title: "Model", value: (r) => r.model || "" },
      { title: "Status", value: (r) => badge(r.status) },
      {
        title: "Verdict",
        value: (r) => {
          const v = byId.get(r.id);
          if (v?.error) return h("span", { class: "badge none", title: v.error.message }, "unavailable");
          return badge(v?.state, v?.summary);
        },
      },
      { title: "Last step", num: true, value: (r) => fmt(byId.get(r.id)?.as_of_step) },
      { title: "Best checkpoint", value: (r) => bestCell(byId.get(r.id)) },
      { title: "Created", value: (r) => when(r.created_at) },
      { title: "Updated", value: (r) => when(r.updated_at) },
    ],
    runs,
    { rowAttrs: (r) => ({ "data-run": r.id }) },
  );
}

function filterForm(ctx, current, rerender) {
  const status = h(
    "select",
    { name: "status", "aria-label": "Status" },
    h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: current.status.includes(s) }, s)),
  );
  const name = h("input", { name: "name", value: current.name, placeholder: "name (exact)", "aria-label": "Run name" });
  const model = h("input", { name: "model", value: current.model, placeholder: "model", "aria-label": "Model" });
  const form = h(
    "form",
    { class: "toolbar", role: "search" },
    status,
    name,
    model,
    h("button", { type: "submit" }, "Filter"),
    h("a", { href: location.pathname }, "Clear"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.setQuery({ status: status.value, name: name.value.trim(), model: model.value.trim(), page_token: "" });
    rerender();
  });
  return form;
}

/** The runs ticked for comparison, and the button that opens /compare with them. */
function compareSelection() {
  const ids = new Set();
  const button = h("button", { type: "button", disabled: true }, "Compare selected");
  const update = () => {
    button.disabled = ids.size < 2;
    button.textContent = ids.size ? `Compare selected (${ids.size})` : "Compare selected";
    button.title = ids.size < 2 ? "Tick two or more runs" : "";
  };
  return {
    button,
    has: (id) => ids.has(id),
    toggle(id, on) {
      if (on) ids.add(id);
      else ids.delete(id);
      update();
    },
    href: () => `/compare?${[...ids].map((id) => `run=${encodeURIComponent(id)}`).join("&")}`,
    update,
  };
}

async function projectSection(project, ctx, current, pageToken, selection) {
  const section = h("section", { class: "panel", "data-project": project });
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  section.append(h("h2", {}, h("a", { href: `/projects/${encodeURIComponent(project)}` }, project)), body);
  try {
    const page = await get(
      `projects/${encodeURIComponent(project)}/runs`,
      {
        status: current.status,
        name: current.name,
        model: current.model,
        page_size: 50,
        page_token: pageToken,
        verdicts: "true",
      },
      ctx.signal,
    );
    const runs = page.runs || [];
    const next = page.next_page_token
      ? h("a", { href: `/projects/${encodeURIComponent(project)}?${pageQuery(ctx, page.next_page_token)}`, rel: "next" }, "Next page →")
      : null;
    show(body, runs.length ? runsTable(runs, page.verdicts, selection) : h("p", { class: "muted" }, "No runs match."), next);
  } catch (error) {
    if (error?.name === "AbortError") throw error;
    show(body, errorBox(error));
  }
  return section;
}

function pageQuery(ctx, token) {
  const query = new URLSearchParams(ctx.query);
  query.set("page_token", token);
  return query.toString();
}

export async function render(root, params, ctx) {
  const draw = async () => {
    const current = filters(ctx);
    const heading = params.project ? params.project : "Runs";
    ctx.setTitle(heading);
    ctx.setCrumbs(params.project ? [["projects", "/"], [params.project, null]] : [["runs", null]]);
    const list = h("div", {});
    const selection = compareSelection();
    selection.button.addEventListener("click", () => ctx.navigate(selection.href()));
    selection.update();
    show(root, h("h1", {}, heading), filterForm(ctx, current, draw), h("div", { class: "toolbar" }, selection.button), list);
    let projects;
    if (params.project) {
      projects = [params.project];
    } else {
      try {
        const answer = await get("projects", { page_size: 1000 }, ctx.signal);
        projects = (answer.projects || []).map((p) => p.name);
      } catch (error) {
        if (error?.name === "AbortError" || error?.status === 401) throw error;
        show(list, errorBox(error));
        return;
      }
      if (!projects.length) {
        show(list, h("p", { class: "muted" }, "No projects yet: create a run with the client."));
        return;
      }
    }
    const token = params.project ? ctx.query.get("page_token") || "" : "";
    const sections = await Promise.all(projects.map((p) => projectSection(p, ctx, current, token, selection)));
    show(list, sections);
  };
  await draw();
}
