// Scaffolding: replaced by the compare view.
import { h, show } from "../ui.js";

export async function render(root, params, ctx) {
  ctx.setTitle("compare");
  show(root, h("h1", {}, "compare"), h("pre", {}, JSON.stringify(params)));
}
