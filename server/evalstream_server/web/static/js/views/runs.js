// Scaffolding: replaced by the runs view.
import { h, show } from "../ui.js";

export async function render(root, params, ctx) {
  ctx.setTitle("runs");
  show(root, h("h1", {}, "runs"), h("pre", {}, JSON.stringify(params)));
}
