// Scaffolding: replaced by the metrics view.
import { h, show } from "../ui.js";

export async function render(root, params, ctx) {
  ctx.setTitle("metrics");
  show(root, h("h1", {}, "metrics"), h("pre", {}, JSON.stringify(params)));
}
