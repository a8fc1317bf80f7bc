/**
 * `verify(request, secret)`: for code that handles the request itself and only wants the check (QStash's
 * `Receiver.verify`). Reads the raw body once, verifies it, and returns the payload with the job's facts.
 */
import { resolveSecrets, type ServeOptions } from "./handler.js";
import { HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, verifyParts, type Secrets, type VerifyOptions } from "./verify.js";

/** A verified delivery. */
export interface Delivery<P = unknown> {
  /** The decoded JSON body. */
  payload: P;
  /** The raw body, as signed. */
  body: string;
  /** The job id (`webhook-id`: the same for every attempt of the job). */
  jobId: string;
  queue: string;
  name: string | undefined;
  attempt: number;
  maxAttempts: number;
  /** When the server signed it, Unix seconds. */
  timestamp: number;
}

/**
 * Verifies a Web `Request` (its body is consumed) against `secret` (default `OFFLOAD_SIGNING_SECRET`); throws
 * `VerifyError` when it is not a genuine delivery signed within the tolerance (five minutes), and
 * `SyntaxError` when the body is not JSON.
 */
export async function verify<P = unknown>(
  request: Request,
  secret?: Secrets,
  options: VerifyOptions = {},
): Promise<Delivery<P>> {
  const secrets = resolveSecrets(secret === undefined ? {} : ({ secret } satisfies ServeOptions));
  const bytes = new Uint8Array(await request.arrayBuffer());
  const h = request.headers;
  const verified = await verifyParts(
    { id: h.get(HEADER_ID), timestamp: h.get(HEADER_TIMESTAMP), signature: h.get(HEADER_SIGNATURE), body: bytes },
    secrets,
    options,
  );
  const body = new TextDecoder().decode(bytes);
  return {
    payload: (body === "" ? null : JSON.parse(body)) as P,
    body,
    jobId: h.get("offload-job-id") ?? verified.id,
    queue: h.get("offload-queue") ?? "",
    name: h.get("offload-job-name") ?? undefined,
    attempt: Number(h.get("offload-attempt") ?? 1),
    maxAttempts: Number(h.get("offload-max-attempts") ?? 1),
    timestamp: verified.timestamp,
  };
}
