"""Schemathesis hooks for Offload's OpenAPI document.

Two kinds of things a JSON Schema cannot say, and nothing else:

1. Values with a grammar no regular expression states exactly carry a named `format` in the document
   (`offload-duration`, `cron`, `iana-time-zone`, `http-url`); these strategies draw valid values of them.
2. Rules that tie two fields together (or items of one list), or a field to the clock, and lengths counted in
   bytes (JSON Schema's maxLength counts characters). Positive cases are brought within them, so a
   refusal of a documented-valid request still fails the run; negative cases are left alone. (The examples
   phase does not run these hooks; the document therefore gives no examples that could break such a rule.)
"""

from datetime import datetime, timedelta, timezone

import schemathesis
from hypothesis import strategies as st

# Text durations between 1 s and 60 s: valid for every duration field (leases need at least 1 s, a claim
# waits at most 60 s, a schedule's jitter at most the shortest interval of the cron expressions below).
DURATIONS = st.one_of(
    st.integers(1, 60).map(lambda n: f"{n}s"),
    st.sampled_from(["1m", "1500ms", "PT30S", "10sec"]),
)
schemathesis.openapi.format("offload-duration", DURATIONS)

# Expressions that fire at most once a minute.
schemathesis.openapi.format(
    "cron",
    st.sampled_from(
        ["* * * * *", "*/5 * * * *", "0 * * * *", "0 0 * * *", "30 2 * * 1-5", "0 9 1 * *", "@daily", "@hourly"]
    ),
)
schemathesis.openapi.format(
    "iana-time-zone",
    st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe"]),
)
# A closed port on loopback: deliveries fail fast and are retried; nothing leaves the machine.
schemathesis.openapi.format(
    "http-url",
    st.from_regex(r"\A/[a-z0-9]{0,20}\Z").map(lambda path: f"http://127.0.0.1:9{path}"),
)


def _millis(value):
    """A duration field as milliseconds, or None when it is absent or text."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    op = context.operation.definition.raw.get("operationId") if context.operation else None
    if op == "list_jobs" and isinstance(case.query, dict) and isinstance(case.query.get("group"), str):
        # A group filter is at most 128 bytes, like a group.
        case.query["group"] = _within_bytes(case.query["group"], 128) or "g"
    if not isinstance(case.body, dict):
        return case
    body = case.body
    jobs = [body] if op == "enqueue" else []
    if op == "enqueue_batch" and isinstance(body.get("jobs"), list):
        jobs = [job for job in body["jobs"] if isinstance(job, dict)]
    for job in jobs:
        _flow_rules(job)
        # `run_at` is at most `[limits] max_delay` (365 days) ahead of the server's clock, and excludes `delay`.
        if job.get("run_at") is not None:
            job["run_at"] = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
            job.pop("delay", None)
        # The backoff's `base` is at most its `cap` (defaults: 1 s and 1 h).
        backoff = job.get("backoff")
        if isinstance(backoff, dict):
            base, cap = backoff.get("base"), backoff.get("cap")
            base_ms = _millis(base) if base is not None else 1000
            cap_ms = _millis(cap) if cap is not None else 3_600_000
            if base_ms is None or cap_ms is None or base_ms > cap_ms:
                backoff["base"], backoff["cap"] = 1000, 3_600_000
    if op == "enqueue":
        # The `Idempotency-Key` header and the body's `idempotency_key` must agree.
        if any(name.lower() == "idempotency-key" for name in (case.headers or {})):
            body.pop("idempotency_key", None)
    if op == "claim" and body.get("wait") is not None:
        # Not a rule: a claim long-polls for as long as `wait` says, so valid waits are kept short to keep the
        # run short.
        body["wait"] = 100
    if op == "heartbeat" and body.get("message") is not None and body.get("progress") is None:
        # A progress message goes with a percentage.
        body["progress"] = 0
    if op == "put_schedule":
        # The body's name, if any, is the path's (left out here: the path may be drawn after this hook); the jitter fits between two fire times (at least a minute
        # apart for the expressions above); a catch-up window goes with `catch_up = "all"`.
        body.pop("name", None)
        jitter = _millis(body.get("jitter"))
        if jitter is not None and jitter > 60_000:
            body["jitter"] = 60_000
        if body.get("catch_up_window") is not None:
            body["catch_up"] = "all"
    if op == "put_function":
        # The body's id, if any, is the path's (left out, as for schedules).
        body.pop("id", None)
        _one_trigger_kind(body)
        _function_flow_rules(body)
    if op == "sync_app" and isinstance(body.get("functions"), list):
        # Every function of an app sync names itself, each id once.
        for i, function in enumerate(f for f in body["functions"] if isinstance(f, dict)):
            function["id"] = f"fn-{i}"
            _one_trigger_kind(function)
            _function_flow_rules(function)
    if op == "append_run_logs":
        # A run's log lines take no lease token (only a job's do; the two routes share one body schema).
        body.pop("lease_token", None)
    if op == "record_run_steps" and isinstance(body.get("steps"), list):
        # Step ids are unique within one report; a step has `data` or `error`, and only the last may have failed.
        steps = [step for step in body["steps"] if isinstance(step, dict)]
        for i, step in enumerate(steps):
            step["id"] = f"step-{i}"
            if step.get("error") is not None and (step.get("data") is not None or i + 1 < len(steps)):
                step.pop("error", None)
    return case


def _within_bytes(text, limit):
    """`text` cut to at most `limit` bytes of UTF-8 (JSON Schema's maxLength counts characters)."""
    while len(text.encode("utf-8")) > limit:
        text = text[:-1]
    return text


def _flow_rules(job):
    """A group is at most 128 bytes and a debounce key at most 256 (the document states it in words; its
    maxLength counts characters); a debounced job has no `run_at` or `delay`, and its `max_wait` is at least its
    `period`."""
    if isinstance(job.get("group"), str):
        job["group"] = _within_bytes(job["group"], 128) or "g"
    debounce = job.get("debounce")
    if isinstance(debounce, dict):
        job.pop("run_at", None)
        job.pop("delay", None)
        if isinstance(debounce.get("key"), str):
            debounce["key"] = _within_bytes(debounce["key"], 256) or "k"
        period, max_wait = debounce.get("period"), debounce.get("max_wait")
        if max_wait is not None:
            p, m = _millis(period), _millis(max_wait)
            if p is None or m is None or m < p:
                debounce["max_wait"] = period


def _short_path(path):
    """A field path is at most 256 bytes (the document's maxLength counts characters); a longer drawn path
    becomes a short valid one."""
    if isinstance(path, str) and len(path.encode("utf-8", "surrogatepass")) > 256:
        return "data.k"
    return path


def _function_flow_rules(function):
    """A function's concurrency has at most one limit without a key and at most one with (they become the queue's
    `concurrency` and `group_concurrency`), a keyed throttle uses the keyed concurrency's key (a call has one
    group), and field paths are at most 256 bytes."""
    limits = function.get("concurrency")
    keyed = None
    if isinstance(limits, list):
        items = [c for c in limits if isinstance(c, dict)]
        for i, c in enumerate(items):
            if i == 0:
                c.pop("key", None)
            else:
                c["key"] = c.get("key") or "data.account"
            if c.get("key") is not None:
                c["key"] = _short_path(c["key"])
                keyed = c["key"]
    throttle = function.get("throttle")
    if isinstance(throttle, dict) and throttle.get("key") is not None:
        throttle["key"] = keyed if keyed is not None else _short_path(throttle["key"])
    for name in ("rate_limit", "singleton"):
        rule = function.get(name)
        if isinstance(rule, dict) and rule.get("key") is not None:
            rule["key"] = _short_path(rule["key"])
    for rule in function.get("cancel_on") or []:
        if isinstance(rule, dict) and rule.get("match") is not None:
            rule["match"] = _short_path(rule["match"])


def _one_trigger_kind(function):
    """A trigger has exactly one of `event` (with its `if`) or `cron` (with its `timezone`); a function has at
    most one cron trigger."""
    crons = 0
    for trigger in function.get("triggers") or []:
        if isinstance(trigger, dict) and trigger.get("event") is None and trigger.get("cron") is not None:
            crons += 1
            if crons > 1:
                trigger.clear()
                trigger["event"] = "app/signup"
    for trigger in function.get("triggers") or []:
        if not isinstance(trigger, dict):
            continue
        if trigger.get("event") is not None:
            trigger.pop("cron", None)
            trigger.pop("timezone", None)
            # A filter's keys are field paths: a grammar the document can only describe (it has no keyword for
            # the names of properties), so positive cases use valid paths.
            if isinstance(trigger.get("if"), dict):
                trigger["if"] = {f"data.f{i}": v for i, v in enumerate(trigger["if"].values())}
        elif trigger.get("cron") is not None:
            trigger.pop("if", None)
            trigger.pop("event", None)
        else:
            trigger.clear()
            trigger["event"] = "app/signup"
