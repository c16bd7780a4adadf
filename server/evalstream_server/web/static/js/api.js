// The JSON API from the page: GET with query parameters, POST/DELETE with the CSRF
// header, Server-Sent Events, and the reading of non-finite numbers (sent as strings).

export const API = "/api/v1";

/** A refusal of the API: its HTTP status, gRPC-style code, message and field. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code || "UNKNOWN";
    this.field = error?.field || null;
  }
}

/** Builds `path?query`: arrays repeat their key; null, undefined and "" are left out. */
export function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== null && v !== undefined && v !== "") query.append(key, String(v));
    }
  }
  const text = query.toString();
  return `${path.startsWith("/") ? path : `${API}/${path}`}${text ? `?${text}` : ""}`;
}

/** The API's path segment for a run: an id, or `project/name` (slash encoded). */
export function runRef(run) {
  return encodeURIComponent(run);
}

function csrf() {
  const match = document.cookie.match(/(?:^|;\s*)evalstream_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

let onUnauthenticated = null;
/** Called with the refusal when a request needs a token the browser does not hold. */
export function whenUnauthenticated(callback) {
  onUnauthenticated = callback;
}

async function request(method, path, { params, body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  const response = await fetch(url(path, params), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data?.error);
    if (response.status === 401 && onUnauthenticated) onUnauthenticated(error);
    throw error;
  }
  return data;
}

/** GET `path` (relative to /api/v1 unless absolute) with query `params`. */
export function get(path, params, signal) {
  return request("GET", path, { params, signal });
}

export function post(path, body, signal) {
  return request("POST", path, { body, signal });
}

export function del(path, signal) {
  return request("DELETE", path, { signal });
}

/** A JSON number of the API as a JavaScript number ("NaN", "Infinity", "-Infinity" too). */
export function num(value) {
  return value === null || value === undefined ? null : Number(value);
}

/**
 * Listens to a Server-Sent Events stream until `signal` aborts; `handlers` maps event
 * names to callbacks receiving the parsed JSON data. The browser reconnects by itself.
 */
export function listen(path, params, handlers, signal) {
  const source = new EventSource(url(path, params), { withCredentials: true });
  for (const [event, handler] of Object.entries(handlers)) {
    source.addEventListener(event, (message) => {
      let data = null;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      handler(data);
    });
  }
  signal?.addEventListener("abort", () => source.close());
  return source;
}
