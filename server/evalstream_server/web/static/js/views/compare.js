// Compare: runs side by side (/compare?run=A&run=B...): hyperparameters and best metrics
// (CompareRuns), what changed between each pair with the one-variable-at-a-time warning,
// metrics whose signatures differ, and the loss curves overlaid: each run's training in a
// shade of orange, its validation in a shade of blue.

import { get, num, runRef } from "../api.js";
import { errorBox, fmt, h, hyper, show, table } from "../ui.js";

// Shades from the product's colours (--train #ff7f0e, --validation #1f77b4) outwards.
const ORANGES = ["#ff7f0e", "#c45a00", "#ffb26b", "#8f4000", "#ffd2a6"];
const BLUES = ["#1f77b4", "#0b4a75", "#6baed6", "#08306b", "#a9cde8"];
const LOSSES = ["final_train_loss", "best_train_loss", "final_validation_loss", "best_validation_loss"];

/** A hyperparameter as given: floats in full (0.0003, not 3.00000e-4). */
function hyperText(value) {
  return value && "float_value" in value ? String(num(value.float_value)) : hyper(value);
}

function runLink(row) {
  return h("a", { href: `/runs/${encodeURIComponent(row.run_id)}` }, row.run_name || row.run_id);
}

/** The form that adds a run of the project by name. */
function addForm(project, ids, ctx, signal) {
  const select = h("select", { id: "compare-add", "aria-label": "Run to add" }, h("option", { value: "" }, "Loading runs…"));
  const button = h("button", { type: "submit" }, "Add to comparison");
  const form = h("form", { class: "toolbar" }, h("label", { for: "compare-add" }, `Add a run of ${project}: `), select, button);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!select.value) return;
    const query = new URLSearchParams();
    for (const id of [...ids, select.value]) query.append("run", id);
    ctx.navigate(`/compare?${query}`);
  });
  get(`projects/${encodeURIComponent(project)}/runs`, { page_size: 1000 }, signal)
    .then((answer) => {
      const others = (answer.runs || []).filter((r) => !ids.includes(r.id));
      select.replaceChildren(
        h("option", { value: "" }, others.length ? "choose a run" : "no other run"),
        ...others.map((r) => h("option", { value: r.id }, r.name)),
      );
    })
    .catch((error) => {
      if (error?.name !== "AbortError") form.append(errorBox(error));
    });
  return form;
}

function hyperTable(answer) {
  const rows = answer.rows;
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.hyperparameters || {})))].sort();
  const differing = new Set(answer.differing || []);
  if (!keys.length) return h("p", { class: "muted" }, "No hyperparameters were recorded.");
  return table(
    [{ title: "hyperparameter", value: (k) => h("span", {}, k, differing.has(k) ? [" ", h("span", { class: "badge warn" }, "differs")] : null) }, ...rows.map((r) => ({ title: runLink(r), value: (k) => hyperText(r.hyperparameters?.[k]) }))],
    keys,
    { rowAttrs: (k) => ({ class: differing.has(k) ? "changed" : null, dataset: { key: k } }) },
  );
}

function metricTable(answer) {
  const rows = answer.rows;
  const best = new Map((answer.best || []).map((b) => [b.metric, b.run_id]));
  const metrics = [...LOSSES, ...[...new Set(rows.flatMap((r) => Object.keys(r.best_metrics || {})))].sort()];
  const value = (r, m) => (LOSSES.includes(m) ? r[m] : r.best_metrics?.[m]);
  const shown = metrics.filter((m) => rows.some((r) => value(r, m) !== null && value(r, m) !== undefined));
  if (!shown.length) return h("p", { class: "muted" }, "No losses or checkpoint metrics were recorded.");
  return table(
    [
      { title: "metric", value: (m) => m },
      ...rows.map((r) => ({
        title: runLink(r),
        num: true,
        value: (m) => {
          const v = value(r, m);
          if (v === null || v === undefined) return h("span", { class: "muted" }, "–");
          const isBest = best.get(m) === r.run_id;
          return h("span", { class: isBest ? "best" : null, title: isBest ? "best of the runs" : null }, fmt(num(v)), isBest ? " ★" : "");
        },
      })),
    ],
    shown,
  );
}

function changes(answer) {
  const names = new Map(answer.rows.map((r) => [r.run_id, r.run_name || r.run_id]));
  const pairs = answer.pairs || [];
  if (!pairs.length) return h("p", { class: "muted" }, "No pairs to compare.");
  return h(
    "ul",
    { class: "pairs" },
    pairs.map((p) =>
      h(
        "li",
        { class: "pair" },
        h("strong", {}, names.get(p.run_a)),
        " → ",
        h("strong", {}, names.get(p.run_b)),
        ": ",
        (p.changed || []).length ? ["changed ", p.changed.map((k, i) => [i ? ", " : "", h("code", {}, k)])] : "nothing changed",
        p.warning ? h("div", { class: "banner warn", role: "note" }, p.warning) : null,
      ),
    ),
  );
}

/** The loss curves of every run on one chart (uPlot), aligned on the union of steps. */
async function lossChart(container, rows, signal) {
  const width = Math.max(320, Math.floor(container.clientWidth || 900));
  const answers = await Promise.all(rows.map((r) => get(`runs/${runRef(r.run_id)}/curves`, { series: "loss", max_points: width }, signal)));
  const lines = [];
  answers.forEach((answer, i) => {
    for (const split of ["train", "validation"]) {
      const s = (answer.series || []).find((x) => x.split === split && x.name === "loss");
      if (!s || !s.steps.length) continue;
      const shades = split === "train" ? ORANGES : BLUES;
      lines.push({ label: `${rows[i].run_name} ${split}`, colour: shades[i % shades.length], split, steps: s.steps.map(Number), values: s.values.map(num) });
    }
  });
  if (!lines.length) {
    show(container, h("p", { class: "muted" }, "No loss curves were recorded."));
    return null;
  }
  const xs = [...new Set(lines.flatMap((l) => l.steps))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const data = [xs];
  for (const l of lines) {
    const ys = new Array(xs.length).fill(null);
    l.steps.forEach((step, j) => {
      const v = l.values[j];
      ys[at.get(step)] = Number.isFinite(v) ? v : null;
    });
    data.push(ys);
  }
  container.replaceChildren();
  // Axis text and grid in the theme's colours (light or dark).
  const style = getComputedStyle(document.documentElement);
  const axis = { stroke: style.getPropertyValue("--fg").trim(), grid: { stroke: style.getPropertyValue("--grid").trim() } };
  const chart = new uPlot(
    {
      width,
      height: 320,
      scales: { x: { time: false } },
      axes: [{ label: "step", ...axis }, { label: "loss", ...axis }],
      series: [{ label: "step" }, ...lines.map((l) => ({ label: l.label, stroke: l.colour, width: l.split === "train" ? 1.5 : 2, spanGaps: true, points: { show: l.split === "validation" } }))],
    },
    data,
    container,
  );
  container.dataset.series = JSON.stringify(lines.map((l) => ({ label: l.label, colour: l.colour })));
  return chart;
}

export async function render(root, params, ctx) {
  const { signal } = ctx;
  const ids = ctx.query.getAll("run").filter(Boolean);
  ctx.setTitle("Compare runs");
  ctx.setCrumbs([["Compare", null]]);
  if (!ids.length) {
    show(root, h("h1", {}, "Compare runs"), h("p", {}, "Choose runs to compare in the ", h("a", { href: "/" }, "runs list"), ", or open /compare?run=ID&run=ID."));
    return;
  }
  let runs;
  try {
    runs = await Promise.all(ids.map((id) => get(`runs/${runRef(id)}`, {}, signal)));
  } catch (error) {
    if (error?.status === 401 || error?.name === "AbortError") throw error;
    show(root, h("h1", {}, error?.status === 404 ? "Not found" : "Cannot compare these runs"), errorBox(error));
    return;
  }
  const project = runs[0].project;
  ctx.setCrumbs([[project, `/projects/${encodeURIComponent(project)}`], ["Compare", null]]);
  const runIds = runs.map((r) => r.id);
  if (runs.length < 2) {
    show(root, h("h1", {}, `Compare ${runs[0].name} with…`), addForm(project, runIds, ctx, signal));
    return;
  }
  let answer;
  try {
    answer = await get("compare", { run: runIds }, signal);
  } catch (error) {
    if (error?.status === 401 || error?.name === "AbortError") throw error;
    show(root, h("h1", {}, "Cannot compare these runs"), errorBox(error), addForm(project, runIds, ctx, signal));
    return;
  }
  ctx.setTitle(`Compare ${answer.rows.map((r) => r.run_name).join(", ")}`);
  const chart = h("div", { class: "chart", id: "compare-chart" });
  const incomparable = answer.incomparable || [];
  show(
    root,
    h("h1", {}, "Compare runs"),
    h("p", {}, answer.rows.map((r, i) => [i ? " · " : "", runLink(r)])),
    addForm(project, runIds, ctx, signal),
    incomparable.length
      ? h("div", { class: "banner warn", role: "note" }, "Not compared, because they were computed differently across these runs (their signatures differ): ", incomparable.map((m, i) => [i ? ", " : "", h("code", {}, m)]), ".")
      : null,
    h("section", { class: "panel" }, h("h2", {}, "What changed"), changes(answer)),
    h("section", { class: "panel" }, h("h2", {}, "Hyperparameters"), hyperTable(answer)),
    h("section", { class: "panel" }, h("h2", {}, "Losses and best metrics"), metricTable(answer)),
    h("section", { class: "panel" }, h("h2", {}, "Loss curves"), h("p", { class: "muted" }, "Training in shades of orange, validation in shades of blue."), chart),
  );
  let plot = null;
  try {
    plot = await lossChart(chart, answer.rows, signal);
  } catch (error) {
    if (error?.name !== "AbortError") show(chart, errorBox(error));
  }
  return () => plot?.destroy();
}
