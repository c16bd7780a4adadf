// Scaffolding: replaced by the evaluation view.
import { h, show } from "../ui.js";

export async function render(root, params, ctx) {
  ctx.setTitle("evaluation");
  show(root, h("h1", {}, "evaluation"), h("pre", {}, JSON.stringify(params)));
}
