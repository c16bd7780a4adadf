// Sign-in: the token is sent once and kept by the browser as an HttpOnly session cookie.

import { ApiError, post } from "../api.js";
import { errorBox, h, show } from "../ui.js";

/** Only a path of this site is a place to go back to (never another origin). */
function safeNext(next) {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/sign-in") ? next : "/";
}

export async function render(root, _params, ctx) {
  ctx.setTitle("Sign in");
  const next = safeNext(ctx.query.get("next"));
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    required: true,
    placeholder: "es_…",
    "aria-describedby": "token-help",
  });
  const message = h("div", { role: "status" });
  const form = h(
    "form",
    { class: "signin", method: "post", action: "/api/v1/session" },
    h("h1", {}, "Sign in to evalstream"),
    h("label", { for: "token" }, "Token"),
    input,
    h("p", { id: "token-help", class: "muted" }, "A token from the server's token file (its role must allow reading). The browser keeps the session for 12 hours."),
    h("button", { type: "submit" }, "Sign in"),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.replaceChildren();
    try {
      await post("session", { token: input.value.trim() });
      await ctx.refreshWho();
      ctx.navigate(next, { replace: true });
    } catch (error) {
      const shown = error instanceof ApiError && error.status === 401 ? new ApiError(401, { message: "That token is not valid on this server.", code: "UNAUTHENTICATED" }) : error;
      message.replaceChildren(errorBox(shown));
      input.focus();
    }
  });
  show(root, form);
  input.focus();
}
