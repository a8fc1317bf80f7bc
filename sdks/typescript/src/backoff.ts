/**
 * The pause before the n-th retry of a call to the server: exponential from a first delay to a cap, with up
 * to 20 % taken off at random so that many clients do not retry in step. Pure, so it is tested without I/O.
 */

/** How a transport retries. */
export interface RetryPolicy {
  /** Tries in all, the first included (default 4; 1 turns retries off). */
  attempts: number;
  /** Pause before the second try, in milliseconds (default 200). */
  minDelayMs: number;
  /** Longest pause, in milliseconds (default 5000). */
  maxDelayMs: number;
}

/** The policy of a client that was given none. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, minDelayMs: 200, maxDelayMs: 5_000 };

/**
 * Pause in milliseconds after `failures` failed tries (1 for the first): `min * 2^(failures-1)`, capped, minus
 * up to 20 % (`random` in [0, 1)). A server's `Retry-After` wins when it is longer, within the cap.
 */
export function retryDelay(policy: RetryPolicy, failures: number, random: number, retryAfterMs?: number): number {
  const exp = policy.minDelayMs * 2 ** Math.min(Math.max(failures - 1, 0), 20);
  const jittered = Math.min(exp, policy.maxDelayMs) * (1 - 0.2 * random);
  if (retryAfterMs !== undefined && retryAfterMs > jittered) return Math.min(retryAfterMs, policy.maxDelayMs);
  return jittered;
}

/** `Retry-After` in milliseconds: delta seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
