// Advanced Evaluation tab of a run: the evaluation-step slider, the specimens of the
// step (filter by flag, paged), one specimen's ground truth beside its prediction (boxes
// drawn, or the VQA question, references and answer), the step's action items, and the
// same specimen in the project's other runs at their best checkpoints.
// URL: /runs/{run}/evaluation?split=&step=&specimen=&flag= reproduces the view.

import { get, runRef } from "../api.js";
import { errorBox, fmt, h, show, table } from "../ui.js";

const GROUND_TRUTH = "#2ca02c";
const PREDICTION = "#d62728";
const BLANK = "#dfe4e8";

/** The tab bar shared with the Metrics view. */
export function tabs(runId, current) {
  const id = encodeURIComponent(runId);
  const tab = (href, text, name) => h("a", { href, "aria-current": current === name ? "page" : null }, text);
  return h("nav", { class: "tabs" }, tab(`/runs/${id}`, "Metrics", "metrics"), tab(`/runs/${id}/evaluation`, "Advanced Evaluation", "evaluation"));
}

/** Whether the browser can load `uri` itself (the server never fetches images). */
function reachable(uri) {
  return /^https?:\/\//i.test(uri || "");
}

/** Whether `uri` is a path relative to the server's --image-root (no scheme). */
function relative(uri) {
  return Boolean(uri) && !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(uri);
}

/** Where the browser loads a specimen's image from, or null when it cannot. */
function imageSource(runId, specimen, split, step) {
  const uri = specimen.image_uri;
  if (reachable(uri)) return uri;
  if (!relative(uri)) return null;
  const path = `/api/v1/runs/${encodeURIComponent(runId)}/specimens/${encodeURIComponent(specimen.specimen_id)}/image`;
  return `${path}?${new URLSearchParams({ split, step: String(step) })}`;
}

/** The size a specimen is drawn at: the image's, else the boxes' extent. */
function extent(specimen) {
  if (specimen.width > 0 && specimen.height > 0) return [specimen.width, specimen.height];
  const boxes = [...(specimen.ground_truth_boxes || []), ...(specimen.predicted_boxes || [])];
  const w = Math.max(1, ...boxes.map((b) => Number(b.x2)));
  const hgt = Math.max(1, ...boxes.map((b) => Number(b.y2)));
  return [Math.ceil(w * 1.1), Math.ceil(hgt * 1.1)];
}

/** A canvas of the image's size with `boxes` drawn in `colour`, over the image when reachable. */
function boxCanvas(specimen, boxes, colour, label, source) {
  const [width, height] = extent(specimen);
  const canvas = h("canvas", { width, height, class: "specimen-canvas", role: "img", "aria-label": label });
  const draw = (image) => {
    const c = canvas.getContext("2d");
    c.fillStyle = BLANK;
    c.fillRect(0, 0, width, height);
    if (image) c.drawImage(image, 0, 0, width, height);
    const line = Math.max(2, Math.round(Math.max(width, height) / 300));
    c.lineWidth = line;
    c.strokeStyle = colour;
    c.fillStyle = colour;
    c.font = `${Math.max(12, line * 6)}px system-ui, sans-serif`;
    c.textBaseline = "bottom";
    for (const b of boxes) {
      const [x1, y1, x2, y2] = [b.x1, b.y1, b.x2, b.y2].map(Number);
      c.strokeRect(x1 + line / 2, y1 + line / 2, Math.max(0, x2 - x1 - line), Math.max(0, y2 - y1 - line));
      const text = b.label || "";
      if (text) c.fillText(text, x1 + line, Math.max(y1, 14) - 1);
    }
  };
  draw(null);
  if (source) {
    const image = new Image();
    image.referrerPolicy = "no-referrer";
    image.addEventListener("load", () => {
      draw(image);
      canvas.dataset.image = "drawn";
    });
    image.addEventListener("error", () => {
      canvas.dataset.image = "unavailable";
    });
    image.src = source;
  }
  return canvas;
}

function boxTable(boxes, { confidence }) {
  if (!boxes.length) return h("p", { class: "muted" }, "No boxes.");
  const columns = [
    { title: "label", value: (b) => b.label || "" },
    { title: "x1", value: (b) => fmt(b.x1), num: true },
    { title: "y1", value: (b) => fmt(b.y1), num: true },
    { title: "x2", value: (b) => fmt(b.x2), num: true },
    { title: "y2", value: (b) => fmt(b.y2), num: true },
  ];
  if (confidence) columns.push({ title: "confidence", value: (b) => fmt(b.confidence), num: true });
  return table(columns, boxes);
}

function scoreTable(scores) {
  const names = Object.keys(scores || {}).sort();
  if (!names.length) return h("p", { class: "muted" }, "No scores.");
  return table(
    [
      { title: "score", value: ([k]) => k },
      { title: "value", value: ([, v]) => fmt(v), num: true },
    ],
    names.map((k) => [k, scores[k]]),
  );
}

function flagBadges(flags) {
  return (flags || []).length ? flags.map((f) => h("span", { class: "badge warn" }, f)) : h("span", { class: "muted" }, "none");
}

/** The scores the list shows: those at IoU 0.5 and the corpus-style text scores. */
function listedScores(scores) {
  const names = Object.keys(scores || {}).sort();
  const main = names.filter((k) => /@0\.5$/.test(k) || /^(bleu|meteor|bertscore_f1|rougeL_fmeasure)$/.test(k));
  return (main.length ? main : names).slice(0, 5);
}

function isBoxes(s) {
  return (s.ground_truth_boxes || []).length > 0 || (s.predicted_boxes || []).length > 0;
}

/** What an image's description says: where it is and whether it is drawn. */
function imageNote(s) {
  const size = s.width > 0 ? `${s.width}×${s.height}` : "size unknown (canvas sized to the boxes)";
  if (!s.image_uri) return `No image was sent; blank canvas, ${size}.`;
  if (reachable(s.image_uri)) return `Image ${s.image_uri} (${size}); blank canvas when the browser cannot load it.`;
  if (relative(s.image_uri)) return `Image ${s.image_uri} under the server's image root (${size}); blank canvas when the server does not serve it.`;
  return `Image ${s.image_uri} is not reachable from the browser; blank canvas, ${size}.`;
}

/** The prediction side of one specimen (boxes or answer), at `stepText`; `source`: its image. */
function predictionSide(s, stepText, source) {
  if (isBoxes(s)) {
    return h(
      "div",
      { class: "prediction" },
      h("h3", {}, `Prediction ${stepText}`),
      boxCanvas(s, s.predicted_boxes || [], PREDICTION, `Predicted boxes ${stepText}`, source),
      boxTable(s.predicted_boxes || [], { confidence: true }),
    );
  }
  return h(
    "div",
    { class: "prediction" },
    h("h3", {}, `Answer ${stepText}`),
    h("blockquote", { class: "answer" }, s.prediction_text || h("span", { class: "muted" }, "(empty answer)")),
  );
}

function groundTruthSide(s, source) {
  if (isBoxes(s)) {
    return h(
      "div",
      { class: "ground-truth" },
      h("h3", {}, "Ground truth"),
      boxCanvas(s, s.ground_truth_boxes || [], GROUND_TRUTH, "Ground-truth boxes", source),
      boxTable(s.ground_truth_boxes || [], { confidence: false }),
    );
  }
  return h(
    "div",
    { class: "ground-truth" },
    h("h3", {}, "Question"),
    h("p", { class: "question" }, s.question || h("span", { class: "muted" }, "(no question sent)")),
    h("h3", {}, "References"),
    h("ul", { class: "references" }, (s.reference_texts || []).map((r) => h("li", {}, r))),
  );
}

export async function render(root, params, ctx) {
  const { signal } = ctx;
  const ref = runRef(params.run);
  let run;
  let steps;
  try {
    run = await get(`runs/${ref}`, {}, signal);
    ({ steps = [] } = await get(`runs/${encodeURIComponent(run.id)}/evaluations`, {}, signal));
  } catch (error) {
    if (error?.status === 401 || error?.name === "AbortError") throw error;
    ctx.setTitle("Advanced Evaluation");
    show(root, h("h1", {}, error?.status === 404 ? "Not found" : "Cannot show this run"), errorBox(error));
    return;
  }
  const id = run.id;
  ctx.setTitle(`${run.name} · Advanced Evaluation`);
  ctx.setCrumbs([
    [run.project, `/projects/${encodeURIComponent(run.project)}`],
    [run.name, `/runs/${encodeURIComponent(id)}`],
    ["Advanced Evaluation", null],
  ]);
  const head = [h("h1", {}, run.name), tabs(id, "evaluation")];
  if (!steps.length) {
    show(root, head, h("p", { class: "muted" }, "This run has no evaluation steps yet: score a checkpoint with score_boxes or score_text and checkpoint=run.checkpoint(step)."));
    return;
  }

  const splits = [...new Set(steps.map((s) => s.split))];
  const q = ctx.query;
  const state = {
    split: splits.includes(q.get("split")) ? q.get("split") : splits.includes("validation") ? "validation" : splits[0],
    step: null,
    flag: q.get("flag") || "",
    specimen: q.get("specimen") || "",
    tokens: [""], // page tokens: the current page's is the last
    history: null, // {id, split, byStep: Map(step -> specimen)} of the selected specimen
  };
  const stepsOf = (split) => steps.filter((s) => s.split === split).sort((a, b) => Number(a.step) - Number(b.step));
  let list = stepsOf(state.split);
  const wanted = Number(q.get("step"));
  const atWanted = list.findIndex((s) => Number(s.step) === wanted);
  let index = q.has("step") && atWanted >= 0 ? atWanted : list.length - 1;
  // A link asking for what the run does not have says so: never shown as something else.
  const notices = [];
  if (q.get("split") && q.get("split") !== state.split) {
    notices.push(`The run has no evaluation on the split "${q.get("split")}" (it has ${splits.join(", ")}); showing ${state.split}.`);
  }
  if (q.has("step") && atWanted < 0) {
    const have = list.map((s) => s.step).join(", ");
    notices.push(`"${q.get("step")}" is not an evaluation step of ${state.split} (its steps: ${have}); showing step ${list[index].step}.`);
  }

  // Controls.
  const splitSelect = h("select", { id: "eval-split" }, splits.map((s) => h("option", { value: s, selected: s === state.split }, s)));
  const slider = h("input", { type: "range", id: "eval-step", min: 0, step: 1, "aria-label": "Evaluation step" });
  const stepOut = h("output", { for: "eval-step", class: "step-number mono" });
  const flagSelect = h("select", { id: "eval-flag" });
  const stepPanel = h("section", { class: "panel", "aria-label": "Step summary" });
  const listPanel = h("section", { class: "panel", "aria-label": "Specimens" });
  const detailPanel = h("section", { class: "panel", "aria-label": "Specimen", id: "specimen-detail" });
  const othersPanel = h("section", { class: "panel", "aria-label": "Other runs" });

  show(
    root,
    head,
    notices.map((text) => h("div", { class: "banner warn notice", role: "status" }, text)),
    h(
      "div",
      { class: "toolbar" },
      h("label", { for: "eval-split" }, "Split "),
      splitSelect,
      h("label", { for: "eval-step" }, "Step "),
      slider,
      stepOut,
      h("label", { for: "eval-flag" }, "Flag "),
      flagSelect,
    ),
    stepPanel,
    listPanel,
    detailPanel,
    othersPanel,
  );

  const current = () => list[index];
  function syncControls() {
    slider.max = String(Math.max(0, list.length - 1));
    slider.value = String(index);
    slider.disabled = list.length < 2;
    const step = current();
    stepOut.value = `step ${step.step} (${index + 1} of ${list.length})`;
    stepOut.textContent = stepOut.value;
    slider.setAttribute("aria-valuetext", `step ${step.step}`);
    const flags = new Set(Object.keys(step.flag_counts || {}));
    if (state.flag) flags.add(state.flag);
    flagSelect.replaceChildren(
      h("option", { value: "", selected: !state.flag }, "all specimens"),
      ...[...flags].sort().map((f) => h("option", { value: f, selected: f === state.flag }, `${f.replaceAll("_", " ")} (${step.flag_counts?.[f] || 0})`)),
    );
    ctx.setQuery({ split: state.split, step: step.step, specimen: state.specimen, flag: state.flag });
  }

  function renderStep() {
    const step = current();
    const metrics = Object.entries(step.metrics || {}).sort(([a], [b]) => a.localeCompare(b));
    const actions = step.actions || [];
    show(
      stepPanel,
      h("h2", {}, `Step ${step.step}, ${step.split}: ${step.specimens} specimens`),
      h(
        "div",
        { class: "grid2" },
        h(
          "div",
          {},
          h("h3", {}, "Action items"),
          actions.length
            ? h(
                "ul",
                { class: "actions" },
                actions.map((a) =>
                  h("li", {}, h("span", { class: "badge warn" }, a.flag), " ", `${a.count} specimen${Number(a.count) === 1 ? "" : "s"}`, h("ul", {}, (a.advice || []).map((adv) => h("li", {}, adv.text || adv.action)))),
                ),
              )
            : h("p", { class: "muted" }, "No specimen carries a diagnosis flag at this step."),
        ),
        h(
          "div",
          {},
          h("h3", {}, "Metrics"),
          metrics.length
            ? table(
                [
                  { title: "metric", value: ([k]) => k },
                  { title: "value", value: ([, v]) => fmt(v), num: true },
                ],
                metrics,
              )
            : h("p", { class: "muted" }, "No metrics at this step."),
        ),
      ),
    );
  }

  let pageController = null;
  async function loadPage() {
    pageController?.abort();
    pageController = new AbortController();
    const local = pageController.signal;
    const both = AbortSignal.any ? AbortSignal.any([signal, local]) : local;
    show(listPanel, h("p", { class: "muted" }, "Loading specimens…"));
    const step = current();
    const token = state.tokens[state.tokens.length - 1];
    let answer;
    try {
      answer = await get(`runs/${encodeURIComponent(id)}/specimens`, { step: step.step, split: state.split, flag: state.flag, page_token: token }, both);
    } catch (error) {
      if (error?.name === "AbortError") return;
      show(listPanel, h("h2", {}, "Specimens"), errorBox(error));
      return;
    }
    const specimens = answer.specimens || [];
    const pick = (s) => {
      state.specimen = s.specimen_id;
      syncControls();
      for (const tr of listPanel.querySelectorAll("tbody tr")) tr.classList.toggle("selected", tr.dataset.specimen === s.specimen_id);
      selectSpecimen();
    };
    show(
      listPanel,
      h("h2", {}, `Specimens${state.flag ? ` flagged ${state.flag.replaceAll("_", " ")}` : ""}`),
      specimens.length
        ? table(
            [
              { title: "specimen", value: (s) => h("button", { type: "button", class: "link specimen-pick", onclick: () => pick(s) }, s.specimen_id || "(no id)") },
              { title: "flags", value: (s) => flagBadges(s.flags) },
              { title: "scores", value: (s) => h("span", { class: "mono" }, listedScores(s.scores).map((k) => `${k}=${fmt(s.scores[k])}`).join("  ")) },
            ],
            specimens,
            { rowAttrs: (s) => ({ class: s.specimen_id === state.specimen ? "selected" : null, dataset: { specimen: s.specimen_id } }) },
          )
        : h("p", { class: "muted" }, "No specimens on this page."),
      h(
        "div",
        { class: "toolbar" },
        h("button", { type: "button", disabled: state.tokens.length < 2, onclick: () => { state.tokens.pop(); loadPage(); } }, "Previous page"),
        h("button", { type: "button", disabled: !answer.next_page_token, onclick: () => { state.tokens.push(answer.next_page_token); loadPage(); } }, "Next page"),
      ),
    );
    if (!state.specimen && specimens.length) pick(specimens[0]);
  }

  let historyController = null;
  async function selectSpecimen() {
    const sid = state.specimen;
    if (!sid) {
      show(detailPanel, h("p", { class: "muted" }, "Choose a specimen."));
      show(othersPanel);
      return;
    }
    if (!state.history || state.history.id !== sid || state.history.split !== state.split) {
      historyController?.abort();
      historyController = new AbortController();
      const local = AbortSignal.any ? AbortSignal.any([signal, historyController.signal]) : historyController.signal;
      show(detailPanel, h("p", { class: "muted" }, `Loading ${sid}…`));
      let answer;
      try {
        answer = await get(`runs/${encodeURIComponent(id)}/specimens/${encodeURIComponent(sid)}/history`, { split: state.split }, local);
      } catch (error) {
        if (error?.name === "AbortError") return;
        show(detailPanel, h("h2", {}, `Specimen ${sid}`), errorBox(error));
        show(othersPanel);
        return;
      }
      state.history = { id: sid, split: state.split, byStep: new Map((answer.steps || []).map((e) => [String(e.step), e.specimen])) };
      loadOthers(sid, state.split);
    }
    renderDetail();
  }

  function renderDetail() {
    const step = current();
    const sid = state.specimen;
    const byStep = state.history.byStep;
    const s = byStep.get(String(step.step));
    if (!s) {
      const recorded = [...byStep.keys()].join(", ");
      show(detailPanel, h("h2", {}, `Specimen ${sid}`), h("p", { class: "banner info" }, `Not recorded at step ${step.step}; recorded at step ${recorded}.`));
      return;
    }
    const source = imageSource(id, s, state.split, step.step);
    show(
      detailPanel,
      h("h2", {}, `Specimen ${sid} at step ${step.step}`),
      h("p", {}, "Flags: ", flagBadges(s.flags)),
      isBoxes(s) ? h("p", { class: "muted image-note" }, imageNote(s)) : null,
      h("div", { class: "grid2 specimen-pair" }, groundTruthSide(s, source), predictionSide(s, `at step ${step.step}`, source)),
      h("h3", {}, "Scores at this step"),
      scoreTable(s.scores),
    );
  }

  let othersController = null;
  async function loadOthers(sid, split) {
    othersController?.abort();
    othersController = new AbortController();
    const local = AbortSignal.any ? AbortSignal.any([signal, othersController.signal]) : othersController.signal;
    show(othersPanel, h("h2", {}, "The same specimen in other runs"), h("p", { class: "muted" }, "Loading…"));
    let others;
    try {
      const answer = await get(`projects/${encodeURIComponent(run.project)}/runs`, { page_size: 50 }, local);
      others = (answer.runs || []).filter((r) => r.id !== id).slice(0, 19);
    } catch (error) {
      if (error?.name === "AbortError") return;
      show(othersPanel, h("h2", {}, "The same specimen in other runs"), errorBox(error));
      return;
    }
    if (!others.length) {
      show(othersPanel, h("h2", {}, "The same specimen in other runs"), h("p", { class: "muted" }, "The project has no other run."));
      return;
    }
    // One call for all: a run that never recorded the specimen answers present=false.
    let entries;
    try {
      const answer = await get("compare/specimens", { run: [id, ...others.map((o) => o.id)], specimen: sid, split, best: "true" }, local);
      entries = answer.runs.slice(1).map((entry, i) => ({ other: others[i], entry }));
    } catch (error) {
      if (error?.name === "AbortError") return;
      show(othersPanel, h("h2", {}, "The same specimen in other runs"), errorBox(error));
      return;
    }
    if (local.aborted) return;
    const present = entries.filter((e) => e.entry.present);
    const absent = entries.filter((e) => !e.entry.present);
    const runLink = (other) =>
      h("a", { href: `/runs/${encodeURIComponent(other.id)}/evaluation?split=${encodeURIComponent(split)}&specimen=${encodeURIComponent(sid)}` }, other.name);
    show(
      othersPanel,
      h("h2", {}, "The same specimen in other runs, at their best checkpoints"),
      present.length
        ? present.map(({ other, entry }) =>
            h(
              "div",
              { class: "other-run", dataset: { run: other.id } },
              h("h3", {}, runLink(other), ` at step ${entry.step}`),
              h("p", { class: "muted" }, entry.note || ""),
              h(
                "div",
                { class: "grid2" },
                predictionSide(entry.specimen, `of ${other.name} at step ${entry.step}`, imageSource(other.id, entry.specimen, split, entry.step)),
                h("div", {}, h("h3", {}, "Flags and scores"), h("p", {}, flagBadges(entry.specimen.flags)), scoreTable(entry.specimen.scores)),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No other run of the project has this specimen at its best checkpoint."),
      absent.length
        ? h(
            "details",
            { class: "absent-runs" },
            h("summary", {}, `${absent.length} other run${absent.length === 1 ? "" : "s"} without it at their best checkpoint`),
            h("ul", {}, absent.map(({ other, entry }) => h("li", { dataset: { run: other.id } }, runLink(other), ": ", h("span", { class: "muted" }, entry.note)))),
          )
        : null,
    );
  }

  // Events.
  slider.addEventListener("input", () => {
    index = Number(slider.value);
    state.tokens = [""];
    syncControls();
    renderStep();
    loadPage();
    if (state.history) renderDetail();
  });
  splitSelect.addEventListener("change", () => {
    state.split = splitSelect.value;
    list = stepsOf(state.split);
    index = list.length - 1;
    state.tokens = [""];
    state.flag = "";
    state.history = null;
    syncControls();
    renderStep();
    loadPage();
    selectSpecimen();
  });
  flagSelect.addEventListener("change", () => {
    state.flag = flagSelect.value;
    state.tokens = [""];
    syncControls();
    loadPage();
  });

  syncControls();
  renderStep();
  loadPage();
  if (state.specimen) selectSpecimen();
  else show(detailPanel, h("p", { class: "muted" }, "Choose a specimen."));
  return () => {
    pageController?.abort();
    historyController?.abort();
    othersController?.abort();
  };
}
