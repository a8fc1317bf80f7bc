/**
 * Framework adapters around `answer` (which decides everything): the Web-standard `Request -> Response`
 * shape (Next.js App Router, Hono, Bun, Deno, Cloudflare Workers, Vercel Edge), the Next.js Pages Router, and
 * Node's `http` / Express. The Node adapters use only the request and response objects they are given, so
 * this module loads in every runtime.
 *
 * Invariant: the signature is checked over the body bytes exactly as received; an adapter never verifies
 * re-encoded JSON. A framework that already parsed the body as JSON is refused with a message saying how to
 * turn its parser off for the route.
 */
import {
  answer,
  DEFAULT_MAX_BODY_BYTES,
  resolveSecrets,
  toPushHandler,
  type PushHandler,
  type Reply,
  type ServeFunctionsOptions,
  type ServeOptions,
} from "./handler.js";

/**
 * A Web-standard route handler: `export const POST = serve(handler)` in a Next.js `route.ts`, or
 * `serve({ functions: [fn1, fn2] })` to answer durable functions' calls (and `handler` for ordinary jobs).
 */
export function serve<P = unknown, R = unknown>(
  handler: PushHandler<P, R> | ServeFunctionsOptions,
  options: ServeOptions = {},
): (request: Request) => Promise<Response> {
  [handler, options] = toPushHandler(handler, options);
  const secrets = resolveSecrets(options);
  const max = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return async (request) => {
    const body = new Uint8Array(await request.arrayBuffer());
    if (body.length > max) return new Response(`the body is larger than ${max} bytes`, { status: 413 });
    const reply = await answer(handler, { headers: request.headers, body }, secrets, options);
    return toResponse(reply);
  };
}

/** A `Reply` as a Web `Response`. */
export function toResponse(reply: Reply): Response {
  return new Response(reply.status === 204 ? null : reply.body, { status: reply.status, headers: reply.headers });
}

/** The parts of a Node `IncomingMessage` (or Express / Next.js request) the adapters read. */
export interface NodeRequest extends AsyncIterable<unknown> {
  headers: Record<string, string | string[] | undefined>;
  /** Set by body parsers (Express, Next.js Pages); a Buffer or string is used as the raw body. */
  body?: unknown;
}

/** The parts of a Node `ServerResponse` the adapters write. */
export interface NodeResponse {
  writeHead(status: number, headers: Record<string, string>): unknown;
  end(body?: string): unknown;
}

/**
 * A Node `http` request listener, also an Express handler: `app.post("/jobs", serveNode(handler))`. Mount it
 * before `express.json()`, or behind `express.raw({ type: "*\/*" })`, so that the raw body reaches it.
 */
export function serveNode<P = unknown, R = unknown>(
  handler: PushHandler<P, R> | ServeFunctionsOptions,
  options: ServeOptions = {},
): (req: NodeRequest, res: NodeResponse) => Promise<void> {
  [handler, options] = toPushHandler(handler, options);
  const secrets = resolveSecrets(options);
  const max = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return async (req, res) => {
    let reply: Reply;
    try {
      const body = await readBody(req, max);
      reply = body === "too_large"
        ? { status: 413, headers: {}, body: `the body is larger than ${max} bytes` }
        : await answer(handler, { headers: toHeaders(req.headers), body }, secrets, options);
    } catch (e) {
      reply = { status: 500, headers: { "content-type": "text/plain; charset=utf-8" }, body: String((e as Error)?.message ?? e) };
    }
    res.writeHead(reply.status, reply.headers);
    res.end(reply.body);
  };
}

/**
 * A Next.js Pages Router API route: `export default serveNextPages(handler)`, with
 * `export const config = { api: { bodyParser: false } }` in the same file (the signature needs the raw body).
 */
export function serveNextPages<P = unknown, R = unknown>(
  handler: PushHandler<P, R> | ServeFunctionsOptions,
  options: ServeOptions = {},
): (req: NodeRequest, res: NodeResponse) => Promise<void> {
  return serveNode(handler, options);
}

/** Node's header object as Web `Headers` (repeated headers joined with `, `). */
function toHeaders(raw: NodeRequest["headers"]): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return headers;
}

/** The raw body: what a raw body parser left, else the stream; `too_large` past `max` bytes. */
async function readBody(req: NodeRequest, max: number): Promise<Uint8Array | "too_large"> {
  if (req.body instanceof Uint8Array) return req.body.length > max ? "too_large" : req.body;
  if (typeof req.body === "string") return new TextEncoder().encode(req.body);
  if (req.body !== undefined && req.body !== null && !isEmptyObject(req.body)) {
    throw new Error(
      "the request body was already parsed, so its signature cannot be checked: disable the JSON body parser for this route " +
        "(Next.js Pages: export const config = { api: { bodyParser: false } }; Express: mount before express.json() or use express.raw())",
    );
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req) {
    const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : (chunk as Uint8Array);
    size += bytes.length;
    if (size > max) return "too_large";
    chunks.push(bytes);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Express sets `req.body = {}` when no parser matched; that is no parsed body. */
function isEmptyObject(value: unknown): boolean {
  return typeof value === "object" && value !== null && !(value instanceof Uint8Array) && Object.keys(value).length === 0;
}
