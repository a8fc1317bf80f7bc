/**
 * Durations as users write them (`"30s"`, `"1h30m"`, `"2d"`, `"PT5M"` or integer milliseconds) turned into
 * milliseconds, so that a sleep's `until` is computed here and every timeout is sent to the server as integer
 * milliseconds (which it reads without ambiguity).
 *
 * Invariant: `durationToMs` returns a finite, non-negative integer or throws a `TypeError` naming the input.
 */

/** A duration: integer milliseconds, or text such as `"250ms"`, `"30s"`, `"5m"`, `"1h30m"`, `"2d"`, `"1w"`. */
export type DurationInput = number | string;

const UNITS: Record<string, number> = {
  ms: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  secs: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hrs: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
  w: 604_800_000,
  week: 604_800_000,
  weeks: 604_800_000,
};

/** `input` in whole milliseconds; throws a `TypeError` for anything that is not a non-negative duration. */
export function durationToMs(input: DurationInput): number {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0) throw new TypeError(`a duration must be a non-negative number of milliseconds, not ${input}`);
    return Math.round(input);
  }
  if (typeof input !== "string") throw new TypeError(`a duration is milliseconds or text like "30s", not ${typeof input}`);
  const text = input.trim().toLowerCase();
  if (/^\d+$/.test(text)) return Number(text);
  const iso = /^p(?:(\d+(?:\.\d+)?)d)?(?:t(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?)?$/.exec(text);
  if (iso && text !== "p" && text !== "pt") {
    const [, d, h, m, s] = iso;
    return Math.round(Number(d ?? 0) * 86_400_000 + Number(h ?? 0) * 3_600_000 + Number(m ?? 0) * 60_000 + Number(s ?? 0) * 1000);
  }
  const part = /(\d+(?:\.\d+)?)\s*([a-z]+)\s*,?\s*/gy;
  let total = 0;
  let at = 0;
  let parts = 0;
  for (let found = part.exec(text); found; found = part.exec(text)) {
    const unit = UNITS[found[2]!];
    if (unit === undefined) break;
    total += Number(found[1]) * unit;
    at = part.lastIndex;
    parts++;
  }
  if (parts === 0 || at !== text.length) {
    throw new TypeError(`\`${input}\` is not a duration; use e.g. "30s", "5m", "1h30m", "2d" or integer milliseconds`);
  }
  return Math.round(total);
}
