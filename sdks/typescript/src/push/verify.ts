/**
 * Standard Webhooks verification of Offload's push deliveries, with Web Crypto only (Node 20+, Bun, Deno,
 * edge runtimes).
 *
 * A delivery is accepted when one of its `v1,<base64>` signatures is the HMAC-SHA256, under one of the
 * secrets, of `{webhook-id}.{webhook-timestamp}.{raw body}`, and its timestamp is within the tolerance (five
 * minutes by default) of the local clock. The comparison is `crypto.subtle.verify`, which is constant-time.
 */

/** The message id header: the job id, the same for every attempt of one job. */
export const HEADER_ID = "webhook-id";
/** The signing time header, Unix seconds. */
export const HEADER_TIMESTAMP = "webhook-timestamp";
/** The signatures header. */
export const HEADER_SIGNATURE = "webhook-signature";
/** How far a delivery's timestamp may be from the local clock by default, in seconds. */
export const DEFAULT_TOLERANCE_SECONDS = 5 * 60;
/** Signatures looked at per header at most (a rotation has two or three; more is an attack on our CPU). */
const MAX_SIGNATURES = 16;

/** Why a request is not accepted as a delivery. */
export type VerifyFailure = "missing_header" | "invalid_header" | "too_old" | "too_new" | "bad_signature";

/** A request that is not a genuine, fresh Offload delivery. */
export class VerifyError extends Error {
  /** Why. */
  readonly reason: VerifyFailure;

  constructor(reason: VerifyFailure, message: string) {
    super(message);
    this.name = "VerifyError";
    this.reason = reason;
  }
}

/** Secrets to accept, `whsec_<base64>` (several during a rotation). */
export type Secrets = string | readonly string[];

/** Options of verification. */
export interface VerifyOptions {
  /** Seconds a timestamp may be away from the local clock (default 300). */
  toleranceSeconds?: number;
  /** The current time in Unix seconds (default: the local clock); for tests. */
  now?: number;
}

/** What verification established. */
export interface Verified {
  /** The `webhook-id`. */
  id: string;
  /** The `webhook-timestamp`, Unix seconds. */
  timestamp: number;
}

/** The three signature headers and the raw body. */
export interface SignedParts {
  id: string | null | undefined;
  timestamp: string | null | undefined;
  signature: string | null | undefined;
  body: Uint8Array;
}

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

/** The HMAC key of a secret, imported once per secret. */
function key(secret: string): Promise<CryptoKey> {
  let found = keys.get(secret);
  if (!found) {
    const raw = decodeSecret(secret);
    found = crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    keys.set(secret, found);
  }
  return found;
}

/** The key bytes of `whsec_<base64>` (the prefix is optional). */
export function decodeSecret(secret: string): Uint8Array<ArrayBuffer> {
  const text = secret.trim().replace(/^whsec_/, "");
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = fromBase64(text);
  } catch {
    throw new TypeError("the signing secret is not `whsec_` followed by base64");
  }
  if (bytes.length === 0) throw new TypeError("the signing secret is empty");
  return bytes;
}

/** The content signed for one message. */
function signedContent(id: string, timestamp: string, body: Uint8Array): Uint8Array<ArrayBuffer> {
  const head = encoder.encode(`${id}.${timestamp}.`);
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

/** Checks the parts of a delivery; throws `VerifyError` when it is not genuine and fresh. */
export async function verifyParts(parts: SignedParts, secrets: Secrets, options: VerifyOptions = {}): Promise<Verified> {
  const list = typeof secrets === "string" ? [secrets] : secrets;
  if (list.length === 0) throw new TypeError("no signing secret given");
  const { id, timestamp, signature } = parts;
  if (!id) throw new VerifyError("missing_header", `missing header ${HEADER_ID}`);
  if (!timestamp) throw new VerifyError("missing_header", `missing header ${HEADER_TIMESTAMP}`);
  if (!signature) throw new VerifyError("missing_header", `missing header ${HEADER_SIGNATURE}`);
  if (!/^\d{1,15}$/.test(timestamp.trim())) throw new VerifyError("invalid_header", `invalid header ${HEADER_TIMESTAMP}`);
  const ts = Number(timestamp.trim());
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (now - ts > tolerance) throw new VerifyError("too_old", "the delivery's timestamp is too old");
  if (ts - now > tolerance) throw new VerifyError("too_new", "the delivery's timestamp is too far in the future");
  const candidates: Uint8Array<ArrayBuffer>[] = [];
  for (const entry of signature.split(" ").slice(0, MAX_SIGNATURES)) {
    const comma = entry.indexOf(",");
    if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
    try {
      candidates.push(fromBase64(entry.slice(comma + 1)));
    } catch {
      // An unreadable entry matches nothing.
    }
  }
  const content = signedContent(id, timestamp, parts.body);
  for (const secret of list) {
    const k = await key(secret);
    for (const candidate of candidates) {
      if (await crypto.subtle.verify("HMAC", k, candidate, content)) return { id, timestamp: ts };
    }
  }
  throw new VerifyError("bad_signature", "no valid signature");
}

/** The `webhook-signature` value for a message: one `v1,<base64>` entry per secret. */
export async function sign(id: string, timestamp: number, body: Uint8Array | string, secrets: Secrets): Promise<string> {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const content = signedContent(id, String(timestamp), bytes);
  const list = typeof secrets === "string" ? [secrets] : secrets;
  const entries = await Promise.all(
    list.map(async (s) => "v1," + toBase64(new Uint8Array(await crypto.subtle.sign("HMAC", await key(s), content)))),
  );
  return entries.join(" ");
}

/** Standard base64 to bytes; throws on anything else. */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) throw new TypeError("not base64");
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Bytes to standard base64. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}
