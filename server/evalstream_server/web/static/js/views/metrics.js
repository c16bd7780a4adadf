// The Metrics tab of a run: the loss chart (training orange at every step, validation blue
// at every evaluation), the learning rate, the verdict with its evidence and actions (live),
// the loss context, hyperparameters and summary, checkpoint metrics in their quality bands,
// and the checkpoint grades with the early-stopping advice.
//
// Charts ask the server for about their pixel width in points (GetCurves max_points; the
// server keeps each bucket's min and max, so spikes stay visible) and ask again for the
// visible range when zoomed. Non-finite points are drawn as markers at the top of the chart.
//
// Contract with the tests and the benchmark: each chart is `div.chart[data-chart=NAME]`,
// holds its uPlot as `.uplot`, and after each draw carries data-drawn="1" and
// data-points (points drawn); the loss chart's first draw marks "evalstream:charts-drawn".
import { get, listen, num, runRef } from "../api.js";
import { badge, errorBox, fmt, h, hyper, show, table, tone } from "../ui.js";

const SERIES = ["loss", "learning_rate"];
const EVIDENCE = [
  ["train_relative_decrease", "training loss decrease (relative)"],
  ["train_recent_slope", "training slope (per 1000 steps)"],
  ["validation_recent_slope", "validation slope (per 1000 steps)"],
  ["gap", "validation − training"],
  ["gap_trend", "gap trend (per 1000 steps)"],
  ["best_validation_step", "best validation step"],
  ["first_nonfinite_step", "first non-finite step"],
];

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function key(series) {
  return `${series.split}/${series.name}`;
}

/** A series of the API as {steps: number[], values: number[]} (strings read as numbers). */
function points(series) {
  return { steps: (series?.steps || []).map(Number), values: (series?.values || []).map(num) };
}

// ------------------------------------------------------------------ chart data

/** uPlot data for the loss chart: x = union of steps; train, validation, non-finite marks. */
function lossData(train, validation, log) {
  const xs = [...new Set([...train.steps, ...validation.steps])].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const tr = new Array(xs.length).fill(null);
  const va = new Array(xs.length).fill(null);
  const bad = new Array(xs.length).fill(null);
  const nonfinite = [];
  let top = -Infinity;
  const put = (s, out) => {
    s.steps.forEach((step, i) => {
      const v = s.values[i];
      if (v === null) return;
      if (!Number.isFinite(v)) nonfinite.push(step);
      else if (log && v <= 0) return;
      else {
        out[index.get(step)] = v;
        top = Math.max(top, v);
      }
    });
  };
  put(train, tr);
  put(validation, va);
  if (!Number.isFinite(top)) top = 1;
  for (const step of nonfinite) bad[index.get(step)] = top;
  const drawn = [tr, va, bad].reduce((n, a) => n + a.filter((v) => v !== null).length, 0);
  return { data: [xs, tr, va, bad], drawn, nonfinite };
}

function lrData(lr) {
  const ys = lr.values.map((v) => (v === null || !Number.isFinite(v) ? null : v));
  return { data: [lr.steps, ys], drawn: ys.filter((v) => v !== null).length };
}

// ------------------------------------------------------------------ one chart

/** A uPlot in `el`, rebuilt on theme change and on log toggle, resized with its box. */
function makeChart(el, { name, series, height, log = () => false, onSelect }) {
  let plot = null;
  let current = null;
  let first = true;

  const opts = () => {
    const fg = cssVar("--fg", "#1b1f24");
    const grid = cssVar("--grid", "rgba(0,0,0,0.08)");
    const axis = { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid } };
    return {
      width: Math.max(200, el.clientWidth),
      height: Math.min(height, Math.max(160, Math.round(el.clientWidth * 0.6))),
      scales: { x: { time: false }, y: { distr: log() ? 3 : 1 } },
      series: [{ label: "step" }, ...series()],
      axes: [axis, { ...axis, size: 70, values: (_u, ticks) => ticks.map((t) => fmt(t, 3)) }],
      legend: { live: true },
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: {
        draw: [
          () => {
            el.dataset.drawn = "1";
            el.dataset.points = String(current?.drawn ?? 0);
            if (first && name === "loss") performance.mark("evalstream:charts-drawn");
            first = false;
          },
        ],
        setSelect: [
          (u) => {
            if (!onSelect || u.select.width < 3) return;
            const a = u.posToVal(u.select.left, "x");
            const b = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            onSelect(Math.max(0, Math.floor(a)), Math.ceil(b));
          },
        ],
      },
    };
  };

  const build = () => {
    plot?.destroy();
    el.replaceChildren();
    if (!current) return;
    plot = new uPlot(opts(), current.data, el);
    el.uplot = plot;
  };

  const observer = new ResizeObserver(() => {
    if (!plot) return;
    const o = opts();
    if (Math.abs(o.width - plot.width) > 1) plot.setSize({ width: o.width, height: o.height });
  });
  observer.observe(el);

  return {
    set(next) {
      const rebuild = !plot;
      current = next;
      if (rebuild) build();
      else {
        plot.setData(next.data, true);
      }
    },
    rebuild: build,
    destroy() {
      observer.disconnect();
      plot?.destroy();
      plot = null;
    },
  };
}

// ------------------------------------------------------------------ verdict parts

function evidenceList(evidence) {
  const items = EVIDENCE.filter(([k]) => evidence?.[k] !== undefined && evidence[k] !== null).map(([k, label]) =>
    h("li", {}, `${label}: `, h("strong", {}, fmt(num(evidence[k])))),
  );
  if (evidence?.spike_steps?.length) {
    items.push(h("li", {}, "spikes at steps ", evidence.spike_steps.map(Number).map((s) => fmt(s)).join(", ")));
  }
  return items.length ? h("ul", { class: "evidence" }, items) : null;
}

function banner(verdict) {
  const state = verdict.state || "unspecified";
  const advice = verdict.advice || [];
  return h(
    "section",
    { class: `banner ${tone(state) === "none" ? "info" : tone(state)}`, "data-verdict": state, "aria-live": "polite" },
    h(
      "h2",
      { style: "margin-top:0" },
      "Verdict: ",
      badge(state),
      verdict.severity ? h("span", { class: "muted" }, ` (${verdict.severity})`) : null,
      h("span", { class: "muted", style: "font-weight:normal" }, ` as of step ${fmt(verdict.as_of_step || 0)}`),
    ),
    h("p", { class: "summary" }, verdict.summary || ""),
    evidenceList(verdict.evidence),
    advice.length
      ? h("div", {}, h("h3", {}, "Recommended actions"), h("ol", { class: "advice" }, advice.map((a) => h("li", { "data-action": a.action }, a.text))))
      : null,
  );
}

function lossContext(context) {
  if (!context) return h("p", { class: "muted" }, "No training loss yet.");
  return h(
    "div",
    {},
    h(
      "p",
      {},
      "Initial loss ",
      h("strong", {}, fmt(num(context.initial_loss))),
      context.initial_band ? [" ", badge(context.initial_band)] : null,
      " · final loss ",
      h("strong", {}, fmt(num(context.final_loss))),
      context.final_band ? [" ", h("span", { class: `badge ${lossBandTone(context.final_band)}` }, context.final_band.replaceAll("_", " "))] : null,
    ),
    context.caveat ? h("p", { class: "muted" }, context.caveat) : null,
  );
}

function lossBandTone(name) {
  return { excellent: "ok", good: "ok", high: "warn" }[name] || tone(name);
}

function earlyStopping(es) {
  if (!es) return null;
  const best = es.best_step !== undefined;
  const advice = !best
    ? "No evaluation of the monitored quantity yet."
    : es.should_stop
      ? `Stop: the patience is exhausted (${es.evaluations_since_best} evaluations, ${fmt(es.steps_since_best)} steps without improvement); deploy the checkpoint of step ${fmt(es.best_step)}.`
      : `Keep training: ${es.evaluations_since_best} evaluation(s) since the best.`;
  return h(
    "div",
    { class: `banner ${es.should_stop ? "warn" : "info"}`, "data-early-stopping": es.should_stop ? "stop" : "continue" },
    h("strong", {}, "Early stopping "),
    h("span", { class: "muted" }, `(${es.monitor}, ${es.mode})`),
    best ? h("p", {}, `Best checkpoint: step ${fmt(es.best_step)}, ${es.monitor} ${fmt(num(es.best_value))}`, es.best_checkpoint_path ? [" at ", h("code", {}, es.best_checkpoint_path)] : null) : null,
    h("p", { class: "advice" }, advice),
  );
}

const GRADE_TONES = { healthy: "ok", overfitting: "warn", severe_overfitting: "bad" };

function gradeBadge(grade) {
  if (!grade || grade === "unspecified") {
    // No gap to grade: the metric was logged on one split only at this step.
    return h("span", { class: "muted", title: "not graded: a grade needs the metric on both the training and the validation split at this step" }, "—");
  }
  const text = String(grade).replaceAll("_", " ");
  return h("span", { class: `badge ${GRADE_TONES[grade] || "none"}` }, text);
}

function gradingTable(verdict) {
  const rows = verdict.checkpoints || [];
  if (!rows.length) return h("p", { class: "muted" }, "No checkpoint metrics recorded: nothing to grade.");
  const best = verdict.early_stopping?.best_step;
  return table(
    [
      { title: "Step", num: true, value: (c) => [fmt(c.step), Number(c.step) === Number(best) ? [" ", h("span", { class: "badge info" }, "best")] : null] },
      { title: "Metric", value: (c) => c.metric },
      { title: "Train", num: true, value: (c) => fmt(num(c.train_value)) },
      { title: "Validation", num: true, value: (c) => fmt(num(c.validation_value)) },
      { title: "Gap", num: true, value: (c) => fmt(num(c.gap)) },
      { title: "Grade", value: (c) => gradeBadge(c.grade) },
      { title: "Saved at", value: (c) => (c.path ? h("code", {}, c.path) : "") },
    ],
    rows,
    { rowAttrs: (c) => ({ class: Number(c.step) === Number(best) ? "selected" : null, "data-grade": c.grade }) },
  );
}

// ------------------------------------------------------------------ bands

/** The band table of a checkpoint metric name ("bbox_f1@0.5" -> f1), or null. */
function bandOf(name, bands) {
  const base = name.split("@")[0].replace(/^bbox_/, "");
  const exact = bands.find((b) => b.name === base);
  if (exact) return exact;
  const prefixed = bands.filter((b) => base.startsWith(`${b.name}_`) || base.endsWith(`_${b.name}`));
  return prefixed.sort((a, b) => b.name.length - a.name.length)[0] || null;
}

function bandBadge(value, table) {
  if (!table || value === null || !Number.isFinite(value)) return null;
  const labels = [...table.cutoffs.map((c) => c.label), table.floor];
  const i = table.cutoffs.findIndex((c) => value >= c.min);
  const at = i < 0 ? labels.length - 1 : i;
  const cls = at === 0 ? "ok" : at === labels.length - 1 ? "bad" : "warn";
  return h("span", { class: `badge ${cls}`, "data-band": labels[at] }, labels[at].replaceAll("_", " "));
}

function checkpointMetrics(series, bands) {
  if (!series?.length) return h("p", { class: "muted" }, "No checkpoint metrics recorded.");
  const columns = series.map((s) => ({ key: key(s), s, pts: points(s), band: bandOf(s.name, bands) }));
  const steps = [...new Set(columns.flatMap((c) => c.pts.steps))].sort((a, b) => a - b);
  return table(
    [
      { title: "Step", num: true, value: (step) => fmt(step) },
      ...columns.map((c) => ({
        title: c.key,
        num: true,
        value: (step) => {
          const i = c.pts.steps.indexOf(step);
          if (i < 0) return "";
          const v = c.pts.values[i];
          return [fmt(v), " ", bandBadge(v, c.band)];
        },
      })),
    ],
    steps,
  );
}

function keyValues(rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return table(
    [
      { title: "Key", value: (r) => h("code", {}, r[0]) },
      { title: "Value", num: true, value: (r) => r[1] },
      { title: "", value: (r) => (r[2] ? h("span", { class: "muted" }, r[2]) : "") },
    ],
    rows,
  );
}

// ------------------------------------------------------------------ the view

export async function render(root, params, ctx) {
  const ref = runRef(params.run);
  const run = await get(`runs/${ref}`, {}, ctx.signal);
  const runPath = `/runs/${encodeURIComponent(run.id)}`;
  ctx.setTitle(`${run.name} · metrics`);
  ctx.setCrumbs([[run.project, `/projects/${encodeURIComponent(run.project)}`], [run.name, runPath], ["metrics", null]]);

  const cleanups = [];
  const state = { log: ctx.query.get("log") === "1", range: null, full: null, series: new Map(), gen: 0, maxPoints: 0 };

  const verdictBox = h("div", { id: "verdict" });
  const contextBox = h("div", {});
  const gradingBox = h("div", {});
  const stoppingBox = h("div", {});
  const metricsBox = h("div", {});
  const chartError = h("div", {});
  const nonfiniteNote = h("p", { class: "muted", "data-nonfinite": "0" });
  const rangeNote = h("span", { class: "muted", "aria-live": "polite" });
  const lossEl = h("div", { class: "chart", "data-chart": "loss", tabindex: "0", role: "img", "aria-label": "Loss by step: training orange, validation blue. Keys: + and − zoom, arrows pan, 0 resets." });
  const lrEl = h("div", { class: "chart", "data-chart": "lr", role: "img", "aria-label": "Learning rate by step" });
  const lrNote = h("p", { class: "muted lr-note" });
  const logButton = h("button", { type: "button", "aria-pressed": String(state.log), "data-action": "log" }, "Log scale");
  const button = (label, action, title) => h("button", { type: "button", class: "icon", "data-action": action, title, "aria-label": title }, label);

  const hyperRows = [
    ...Object.entries(run.hyperparameters || {}).sort().map(([k, v]) => [k, hyper(v), ""]),
    ...Object.entries(run.derived || {}).sort().map(([k, v]) => [k, hyper(v), "derived"]),
  ];
  const summaryRows = Object.entries(run.summary || {}).sort().map(([k, v]) => [k, hyper(v), ""]);

  show(
    root,
    h("h1", {}, run.name, " ", badge(run.status)),
    h("p", { class: "muted" }, [run.model, run.task && run.task !== "unspecified" ? run.task : null, run.project].filter(Boolean).join(" · ")),
    h(
      "nav",
      { class: "tabs", "aria-label": "Run views" },
      h("a", { href: `${runPath}/metrics`, "aria-current": "page" }, "Metrics"),
      h("a", { href: `${runPath}/evaluation` }, "Advanced Evaluation"),
    ),
    verdictBox,
    h(
      "section",
      { class: "panel" },
      h("h2", {}, "Loss ", h("span", { class: "legend-swatch", style: "background:var(--train)" }), h("span", { class: "muted" }, "training "), h("span", { class: "legend-swatch", style: "background:var(--validation)" }), h("span", { class: "muted" }, "validation "), h("span", { class: "legend-swatch", style: "background:var(--nonfinite)" }), h("span", { class: "muted" }, "non-finite")),
      h(
        "div",
        { class: "toolbar" },
        button("+", "zoom-in", "Zoom in"),
        button("−", "zoom-out", "Zoom out"),
        button("←", "pan-left", "Pan left"),
        button("→", "pan-right", "Pan right"),
        button("Reset", "reset", "Show every step"),
        logButton,
        rangeNote,
      ),
      chartError,
      lossEl,
      nonfiniteNote,
      h("h3", {}, "Loss context"),
      contextBox,
    ),
    h("section", { class: "panel" }, h("h2", {}, "Learning rate"), lrNote, lrEl),
    h("section", { class: "panel" }, h("h2", {}, "Checkpoints"), stoppingBox, h("h3", {}, "Grades"), gradingBox, h("h3", {}, "Metrics and quality bands"), metricsBox),
    h(
      "div",
      { class: "grid2" },
      h("section", { class: "panel" }, h("h2", {}, "Hyperparameters"), keyValues(hyperRows, "No hyperparameters.")),
      h("section", { class: "panel" }, h("h2", {}, "Summary"), keyValues(summaryRows, "No summary values.")),
    ),
  );

  // ---- charts
  const loss = makeChart(lossEl, {
    name: "loss",
    log: () => state.log,
    height: 340,
    series: () => {
      const nf = cssVar("--nonfinite", "#d62728");
      return [
        { label: "training", stroke: cssVar("--train", "#ff7f0e"), width: 1.5, spanGaps: true, points: { show: false } },
        { label: "validation", stroke: cssVar("--validation", "#1f77b4"), width: 2, spanGaps: true, points: { show: true, size: 6, fill: cssVar("--validation", "#1f77b4") } },
        { label: "non-finite", stroke: nf, paths: () => null, points: { show: true, size: 10, fill: nf, stroke: nf } },
      ];
    },
    onSelect: (a, b) => zoomTo(a, b),
  });
  const lr = makeChart(lrEl, {
    name: "lr",
    height: 200,
    series: () => [{ label: "learning rate", stroke: cssVar("--best", "#9467bd"), width: 1.5, spanGaps: true, points: { show: false } }],
  });
  cleanups.push(() => loss.destroy(), () => lr.destroy());

  let bands = [];
  let checkpointSeries = null;
  const showMetrics = () => show(metricsBox, checkpointMetrics(checkpointSeries, bands));

  const find = (split, name) => state.series.get(`${split}/${name}`) || { steps: [], values: [] };
  const lrSeries = () => {
    for (const [k, s] of state.series) if (k.endsWith("/learning_rate")) return s;
    return { steps: [], values: [] };
  };

  const draw = () => {
    const l = lossData(find("train", "loss"), find("validation", "loss"), state.log);
    loss.set(l);
    const rates = lrSeries();
    lr.set(lrData(rates));
    lrNote.textContent = rates.steps.length
      ? ""
      : "No learning rate logged: log it as the series learning_rate (run.log(step, learning_rate=...)), as the Trainer and Lightning integrations do.";
    nonfiniteNote.dataset.nonfinite = String(l.nonfinite.length);
    nonfiniteNote.textContent = l.nonfinite.length
      ? `${l.nonfinite.length} non-finite loss point(s) (NaN or infinite), marked in red at the top; first at step ${fmt(Math.min(...l.nonfinite))}.`
      : "";
    rangeNote.textContent = state.range ? `steps ${fmt(state.range[0])}–${fmt(state.range[1])}` : "every step";
    lossEl.dataset.range = state.range ? state.range.join("-") : "";
    lossEl.dataset.maxPoints = String(state.maxPoints);
  };

  const load = async () => {
    const gen = ++state.gen;
    state.maxPoints = Math.max(100, Math.round(lossEl.clientWidth || 800));
    const [start, end] = state.range || [null, null];
    try {
      const answer = await get(`runs/${ref}/curves`, { series: SERIES, max_points: state.maxPoints, start_step: start, end_step: end }, ctx.signal);
      if (gen !== state.gen) return;
      chartError.replaceChildren();
      state.series = new Map((answer.series || []).map((s) => [key(s), points(s)]));
      if (!state.range) {
        const all = [...state.series.values()].flatMap((s) => s.steps);
        state.full = all.length ? [Math.min(...all), Math.max(...all)] : null;
        checkpointSeries = answer.checkpoint_metrics || [];
        showMetrics();
      }
      draw();
    } catch (error) {
      if (error?.name === "AbortError") return;
      show(chartError, errorBox(error));
    }
  };

  const zoomTo = (a, b) => {
    const full = state.full || [0, 1];
    let lo = Math.max(full[0], Math.round(a));
    let hi = Math.min(full[1], Math.round(b));
    if (hi - lo < 2) hi = lo + 2;
    if (lo <= full[0] && hi >= full[1]) state.range = null;
    else state.range = [lo, hi];
    ctx.setQuery({ from: state.range ? lo : "", to: state.range ? hi : "" });
    return load();
  };
  const visible = () => state.range || state.full || [0, 1];
  const zoom = (factor) => {
    const [a, b] = visible();
    const mid = (a + b) / 2;
    const half = ((b - a) / 2) * factor;
    return zoomTo(mid - half, mid + half);
  };
  const pan = (fraction) => {
    const [a, b] = visible();
    const full = state.full || [a, b];
    let shift = (b - a) * fraction;
    shift = Math.max(full[0] - a, Math.min(full[1] - b, shift));
    return zoomTo(a + shift, b + shift);
  };
  const actions = {
    "zoom-in": () => zoom(0.5),
    "zoom-out": () => zoom(2),
    "pan-left": () => pan(-0.25),
    "pan-right": () => pan(0.25),
    reset: () => zoomTo(-Infinity, Infinity),
    log: () => {
      state.log = !state.log;
      logButton.setAttribute("aria-pressed", String(state.log));
      ctx.setQuery({ log: state.log ? "1" : "" });
      loss.rebuild();
      draw();
    },
  };
  root.querySelector(".toolbar").addEventListener("click", (event) => {
    const target = event.target.closest("button[data-action]");
    if (target) actions[target.dataset.action]?.();
  });
  const keys = { "+": "zoom-in", "=": "zoom-in", "-": "zoom-out", ArrowLeft: "pan-left", ArrowRight: "pan-right", 0: "reset", l: "log" };
  lossEl.addEventListener("keydown", (event) => {
    const action = keys[event.key];
    if (!action || event.ctrlKey || event.metaKey || event.altKey) return;
    event.preventDefault();
    actions[action]();
  });

  const onTheme = () => {
    loss.rebuild();
    lr.rebuild();
  };
  window.addEventListener("evalstream:theme", onTheme);
  cleanups.push(() => window.removeEventListener("evalstream:theme", onTheme));

  // ---- verdict, live
  const showVerdict = (verdict) => {
    show(verdictBox, banner(verdict));
    show(contextBox, lossContext(verdict.loss_context));
    show(gradingBox, gradingTable(verdict));
    show(stoppingBox, earlyStopping(verdict.early_stopping));
  };
  const from = Number(ctx.query.get("from"));
  const to = Number(ctx.query.get("to"));
  if (ctx.query.has("from") && ctx.query.has("to") && Number.isFinite(from) && Number.isFinite(to) && to > from) {
    state.range = [from, to];
  }
  // The chart first, then the verdict: a long run's first verdict reads the whole run,
  // and asked at once it would share the server's CPU with the chart's read.
  const banding = get("bands", {}, ctx.signal).catch(() => ({ bands: [] }));
  await load();
  const [verdict, bandAnswer] = await Promise.all([
    get(`runs/${ref}/verdict`, {}, ctx.signal).catch((error) => ({ error })),
    banding,
  ]);
  bands = bandAnswer.bands || [];
  if (checkpointSeries) showMetrics();
  if (verdict.error) show(verdictBox, errorBox(verdict.error));
  else showVerdict(verdict);
  if (state.range && !state.full) state.full = state.range;

  // Each stream is closed at its "end" (the run finished): EventSource would reconnect.
  const verdicts = listen(`runs/${ref}/verdict/stream`, {}, { verdict: showVerdict, end: () => verdicts.close() }, ctx.signal);

  // ---- live points: appended to the series shown when the view reaches the last step
  const after = Math.min(...[...state.series.values()].map((s) => (s.steps.length ? s.steps[s.steps.length - 1] : -1)), Infinity);
  let reloading = null;
  const onPoints = (message) => {
    let grew = false;
    for (const s of message.series || []) {
      const k = key(s);
      const incoming = points(s);
      const mine = state.series.get(k) || { steps: [], values: [] };
      const last = mine.steps.length ? mine.steps[mine.steps.length - 1] : -1;
      incoming.steps.forEach((step, i) => {
        if (step <= last) return;
        state.full = state.full ? [state.full[0], Math.max(state.full[1], step)] : [step, step];
        if (state.range) return; // a zoomed view keeps its range
        mine.steps.push(step);
        mine.values.push(incoming.values[i]);
        grew = true;
      });
      state.series.set(k, mine);
    }
    if (!grew) return;
    const total = [...state.series.values()].reduce((n, s) => n + s.steps.length, 0);
    if (total > 3 * state.maxPoints) {
      clearTimeout(reloading);
      reloading = setTimeout(load, 500); // too many for the width: downsample again
    }
    draw();
  };
  const live = listen(
    `runs/${ref}/curves/stream`,
    { series: SERIES, after_step: Number.isFinite(after) ? after : -1, max_points: state.maxPoints },
    { points: onPoints, end: () => live.close() },
    ctx.signal,
  );
  cleanups.push(() => clearTimeout(reloading));

  return () => cleanups.forEach((fn) => fn());
}
