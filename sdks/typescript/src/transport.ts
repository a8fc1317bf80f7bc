/**
 * One HTTP call to the server: URL, bearer token, JSON in and out, problem documents turned into
 * `OffloadError`, and retries.
 *
 * Invariant: a call is sent again only when it is idempotent (the caller says so) and it failed without an
 * answer (network error) or with 503; every other failure is thrown at once, so a non-idempotent request is
 * never sent twice.
 */
import { DEFAULT_RETRY, parseRetryAfter, retryDelay, type RetryPolicy } from "./backoff.js";
import { CONNECTION_FAILED, OffloadError } from "./errors.js";
import type { Problem } from "./types.js";

/** How to reach the server. */
export interface TransportOptions {
  /** Base URL, e.g. `http://127.0.0.1:7070`. */
  baseUrl: string;
  /** API token, sent as `Authorization: Bearer ...`. */
  token?: string | undefined;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Retries of idempotent calls. */
  retry?: Partial<RetryPolicy>;
}

/** One request. */
export interface Call {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Path segments after the base URL; each is URL-encoded. */
  path: string[];
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  /** May the call be sent again after a network error or a 503? */
  idempotent: boolean;
  signal?: AbortSignal | undefined;
}

/** An answer with a 2xx status. */
export interface Answer<T> {
  status: number;
  body: T;
}

/** Sends calls to one server. */
export class Transport {
  readonly baseUrl: string;
  readonly #token: string | undefined;
  readonly #fetch: typeof fetch;
  readonly #retry: RetryPolicy;

  constructor(options: TransportOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.#token = options.token;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
  }

  /** The URL of a call. */
  url(call: Pick<Call, "path" | "query">): string {
    let url = this.baseUrl + "/" + call.path.map(encodeURIComponent).join("/");
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(call.query ?? {})) if (v !== undefined) query.append(k, String(v));
    const q = query.toString();
    if (q) url += "?" + q;
    return url;
  }

  /** Sends a call, retrying it when allowed; throws `OffloadError` for anything but a 2xx. */
  async send<T>(call: Call): Promise<Answer<T>> {
    for (let failures = 1; ; failures++) {
      try {
        return await this.#once<T>(call);
      } catch (e) {
        const retryable =
          e instanceof OffloadError && call.idempotent && (e.status === 0 || e.status === 503) && !call.signal?.aborted;
        if (!retryable || failures >= this.#retry.attempts) throw e;
        await sleep(retryDelay(this.#retry, failures, Math.random(), e.retryAfterMs), call.signal);
      }
    }
  }

  async #once<T>(call: Call): Promise<Answer<T>> {
    const headers: Record<string, string> = { accept: "application/json", ...call.headers };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    let body: string | undefined;
    if (call.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(call.body);
    }
    let response: Response;
    try {
      response = await this.#fetch(this.url(call), { method: call.method, headers, body, signal: call.signal ?? null });
    } catch (e) {
      if (call.signal?.aborted) throw e;
      throw new OffloadError(0, CONNECTION_FAILED, `cannot reach ${this.baseUrl}: ${describe(e)}`, null, { cause: e });
    }
    const text = await response.text();
    if (response.ok) {
      return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
    }
    throw toError(response.status, text, parseRetryAfter(response.headers.get("retry-after")));
  }
}

/** The error for a non-2xx answer: the problem document's fields, or the status and body when it has none. */
function toError(status: number, text: string, retryAfterMs: number | undefined): OffloadError {
  try {
    const problem = JSON.parse(text) as Partial<Problem>;
    if (problem && typeof problem.code === "string") {
      return new OffloadError(status, problem.code, problem.detail ?? "", problem.field, { retryAfterMs });
    }
  } catch {
    // Not JSON: fall through.
  }
  return new OffloadError(status, `http_${status}`, text.slice(0, 1000) || `HTTP ${status}`, null, { retryAfterMs });
}

/** A network error's message with its cause (undici puts the reason, e.g. ECONNREFUSED, there). */
function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  return cause instanceof Error ? `${e.message}: ${cause.message}` : e.message;
}

/** Waits `ms`, or less when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((done) => {
    if (signal?.aborted) return done();
    const timer = setTimeout(finish, ms);
    function finish() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", finish);
      done();
    }
    signal?.addEventListener("abort", finish, { once: true });
  });
}
