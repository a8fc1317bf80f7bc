//! The rules the validators check on single values, stated in the document's schemas and parameters.
//!
//! Invariant: every bound here is read from the constant or the [`Limits`] value the validation itself reads
//! (`offload_core::spec`, `offload_core::api`, `offload_core::push`), so the document cannot promise more or
//! less than the server enforces. A rule that names a schema, property or parameter the document lacks panics
//! when the document is built, so a renamed field fails the OpenAPI tests instead of losing its constraints.
//!
//! Values whose grammar a regular expression cannot state exactly carry a named `format` instead (see the
//! `FORMAT_*` constants): durations as text, cron expressions, time zones and push URLs.

use std::time::Duration;

use offload_core::api::{
    MAX_BATCH_JOBS, MAX_CLAIM_JOBS, MAX_CLAIM_WAIT_MS, MAX_PAGE_LIMIT, MAX_PROGRESS,
    MAX_PROGRESS_MESSAGE_LEN, MAX_WORKER_ID_LEN,
};
use offload_core::cron::schedule::MAX_CRON_LEN;
use offload_core::flow::debounce::MAX_DEBOUNCE_KEY_LEN;
use offload_core::flow::limits::{MAX_GROUP_LEN, MAX_THROTTLE_PERIOD, MIN_THROTTLE_PERIOD};
use offload_core::function::definition::{MAX_CANCEL_ON, MAX_RETRIES, MAX_TRIGGERS};
use offload_core::function::event::{MAX_EVENT_ID_LEN, MAX_EVENTS_PER_REQUEST};
use offload_core::function::filter::{MAX_CONDITIONS, MAX_IN_VALUES};
use offload_core::function::flow::MAX_CONCURRENCY;
use offload_core::function::names::{MAX_EVENT_NAME_LEN, MAX_FUNCTION_ID_LEN, MAX_STEP_ID_LEN};
use offload_core::function::path::{MAX_PATH_LEN, MAX_PATH_SEGMENTS};
use offload_core::function::protocol::MAX_ERROR_NAME_LEN;
use offload_core::function::run::RunState;
use offload_core::push::callback::RESERVED_QUEUE_PREFIX;
use offload_core::push::target::{
    FORBIDDEN_HEADERS, MAX_HEADER_VALUE_LEN, MAX_TARGET_HEADERS, MAX_TARGET_TIMEOUT, MAX_URL_LEN,
    METHODS, MIN_TARGET_TIMEOUT, RESERVED_HEADER_PREFIXES,
};
use offload_core::spec::{
    Limits, MAX_IDEMPOTENCY_KEY_LEN, MAX_NAME_LEN, MAX_QUEUE_LEN, MAX_TAG_KEY_LEN,
    MAX_TAG_VALUE_LEN, MAX_TAGS, MIN_TIMEOUT, NO_CONTROL_PATTERN, QUEUE_NAME_PATTERN,
};
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder,
    Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{OpenApi, Ref, RefOr};

/// Shortest debounce period and `max_wait` (`offload_core::flow::debounce::DebounceSpec::validate`).
const MIN_DEBOUNCE_PERIOD: Duration = Duration::from_millis(1);

use crate::routes::apps::MAX_APP_FUNCTIONS;
use crate::routes::runs::MAX_RECORDED_STEPS_PER_REQUEST;

/// A duration written as text (`"30s"`, `"1h30m"`, `"PT5M"`, `"2d"`); the integer form states its bounds.
pub(crate) const FORMAT_DURATION: &str = "offload-duration";
/// A cron expression: 5 fields, 6 (seconds first) or a nickname such as `@daily`, that fires again.
pub(crate) const FORMAT_CRON: &str = "cron";
/// An IANA time zone name such as `Europe/Paris`.
pub(crate) const FORMAT_TIME_ZONE: &str = "iana-time-zone";
/// An absolute `http` or `https` URL without credentials.
pub(crate) const FORMAT_HTTP_URL: &str = "http-url";

/// Adds every constraint to `doc`, with the configurable bounds taken from `limits`.
pub(crate) fn apply(doc: &mut OpenApi, limits: &Limits) {
    let max_delay = limits.max_delay.0;
    let job_queue = || {
        string(1, MAX_QUEUE_LEN)
            .pattern(Some(format!(
                "^(?!{})[A-Za-z0-9._:-]+$",
                regex_escape(RESERVED_QUEUE_PREFIX)
            )))
            .description(Some(format!(
                "Queue name: 1 to {MAX_QUEUE_LEN} ASCII letters, digits and `-_.:`; names starting with \
                 `{RESERVED_QUEUE_PREFIX}` are reserved"
            )))
            .build()
    };
    for schema in ["EnqueueRequest", "JobTemplateSpec"] {
        set(doc, schema, "queue", job_queue());
        set(doc, schema, "name", text(MAX_NAME_LEN).build());
        set(
            doc,
            schema,
            "max_attempts",
            integer(1, u64::from(limits.max_attempts)).build(),
        );
        set(
            doc,
            schema,
            "timeout",
            duration(MIN_TIMEOUT, limits.max_timeout.0),
        );
    }
    set(
        doc,
        "EnqueueRequest",
        "delay",
        duration(Duration::ZERO, max_delay),
    );
    set(
        doc,
        "EnqueueRequest",
        "idempotency_key",
        text(MAX_IDEMPOTENCY_KEY_LEN).build(),
    );
    set(
        doc,
        "EnqueueRequest",
        "tags",
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .max_properties(Some(MAX_TAGS))
            .property_names(Some(text(MAX_TAG_KEY_LEN)))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(MAX_TAG_VALUE_LEN))
                    .build()
                    .into(),
            ))))
            .build(),
    );
    for (schema, field) in [("Backoff", "base"), ("Backoff", "cap")] {
        set(doc, schema, field, duration(Duration::ZERO, max_delay));
    }
    set(
        doc,
        "Backoff",
        "jitter",
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
            .minimum(Some(0.0))
            .maximum(Some(1.0))
            .build(),
    );

    for field in ["url", "callback_url", "failure_callback_url"] {
        set(doc, "Target", field, http_url());
    }
    set(
        doc,
        "Target",
        "method",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^({})$", METHODS.map(caseless).join("|"))))
            .build(),
    );
    let reserved = FORBIDDEN_HEADERS
        .iter()
        .map(|name| format!("{}$", caseless(name)))
        .chain(
            RESERVED_HEADER_PREFIXES
                .iter()
                .map(|prefix| caseless(prefix)),
        )
        .collect::<Vec<_>>()
        .join("|");
    set(
        doc,
        "Target",
        "headers",
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .max_properties(Some(MAX_TARGET_HEADERS))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .pattern(Some(format!(
                        "^(?!(?:{reserved}))[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
                    ))),
            ))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(MAX_HEADER_VALUE_LEN))
                    .pattern(Some("^[^\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f]*$"))
                    .build()
                    .into(),
            ))))
            .build(),
    );
    set(
        doc,
        "Target",
        "timeout",
        duration(MIN_TARGET_TIMEOUT, MAX_TARGET_TIMEOUT),
    );

    set(
        doc,
        "ClaimRequest",
        "worker_id",
        text(MAX_WORKER_ID_LEN).build(),
    );
    set(
        doc,
        "ClaimRequest",
        "max_jobs",
        integer(1, u64::from(MAX_CLAIM_JOBS)).build(),
    );
    set(
        doc,
        "ClaimRequest",
        "wait",
        duration(Duration::ZERO, Duration::from_millis(MAX_CLAIM_WAIT_MS)),
    );
    set(
        doc,
        "HeartbeatRequest",
        "progress",
        integer(0, u64::from(MAX_PROGRESS)).build(),
    );
    set(
        doc,
        "HeartbeatRequest",
        "message",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX_PROGRESS_MESSAGE_LEN))
            .build(),
    );
    for schema in ["FailRequest", "FailItem"] {
        set(
            doc,
            schema,
            "retry_after",
            duration(Duration::ZERO, max_delay),
        );
    }
    set(
        doc,
        "SnoozeRequest",
        "delay",
        duration(Duration::ZERO, max_delay),
    );
    for schema in [
        "EnqueueBatchRequest",
        "CompleteBatchRequest",
        "FailBatchRequest",
    ] {
        bound_items(doc, schema, "jobs", 1, MAX_BATCH_JOBS);
    }

    set(doc, "ScheduleSpec", "name", queue_name());
    set(doc, "ScheduleSpec", "cron", cron());
    set(doc, "ScheduleSpec", "timezone", time_zone());
    set(
        doc,
        "ScheduleSpec",
        "jitter",
        duration(Duration::ZERO, max_delay),
    );
    set(
        doc,
        "ScheduleSpec",
        "catch_up_window",
        duration(Duration::from_millis(1), Duration::MAX),
    );

    param(doc, "/v1/jobs", "limit", page_limit());
    param(
        doc,
        "/v1/jobs",
        "Idempotency-Key",
        text(MAX_IDEMPOTENCY_KEY_LEN).build(),
    );
    param(doc, "/v1/jobs", "queue", queue_name());
    param(
        doc,
        "/v1/jobs",
        "tag",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[^:]+:"))
            .build(),
    );
    param(
        doc,
        "/v1/jobs",
        "cursor",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .build(),
    );
    param(doc, "/v1/schedules", "limit", page_limit());
    param(doc, "/v1/schedules", "cursor", queue_name());
    for path in [
        "/v1/queues/{queue}/claim",
        "/v1/queues/{queue}/pause",
        "/v1/queues/{queue}/resume",
    ] {
        param(doc, path, "queue", queue_name());
    }
    for path in [
        "/v1/schedules/{name}",
        "/v1/schedules/{name}/pause",
        "/v1/schedules/{name}/resume",
        "/v1/schedules/{name}/trigger",
    ] {
        param(doc, path, "name", queue_name());
    }
    functions(doc);
    flow(doc, max_delay);
    logs(doc);
}

/// The rules of log lines (`offload_core::log`): 1 to 100 lines per append, messages without NUL (their
/// byte bound is in their description), pages of 1 to 1000.
fn logs(doc: &mut OpenApi) {
    use offload_core::log::{MAX_LINES_PER_APPEND, MAX_READ_LIMIT};
    bound_items(doc, "LogAppendRequest", "lines", 1, MAX_LINES_PER_APPEND);
    set(
        doc,
        "LogLineRequest",
        "message",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[^\\x00]*$"))
            .build(),
    );
    for path in ["/v1/jobs/{id}/logs", "/v1/runs/{id}/logs"] {
        param(
            doc,
            path,
            "limit",
            integer(1, u64::from(MAX_READ_LIMIT)).build(),
        );
        param(
            doc,
            path,
            "after",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .build(),
        );
    }
}

/// The rules of flow control: a job's group and debounce, queue limits, the group filter.
fn flow(doc: &mut OpenApi, max_delay: Duration) {
    let group = || -> Schema {
        text(MAX_GROUP_LEN)
            .description(Some(format!(
                "The tenant, user or account the job belongs to: 1 to {MAX_GROUP_LEN} bytes of UTF-8 \
                 without control characters"
            )))
            .build()
            .into()
    };
    set(doc, "EnqueueRequest", "group", group());
    param(doc, "/v1/jobs", "group", group());
    set(
        doc,
        "DebounceSpec",
        "key",
        text(MAX_DEBOUNCE_KEY_LEN).build(),
    );
    set(
        doc,
        "DebounceSpec",
        "period",
        duration(MIN_DEBOUNCE_PERIOD, max_delay),
    );
    set(
        doc,
        "DebounceSpec",
        "max_wait",
        duration(MIN_DEBOUNCE_PERIOD, max_delay),
    );
    let limit = || integer(1, u64::from(u32::MAX)).build();
    for schema in ["QueueLimitsPatch", "QueueLimits"] {
        set(doc, schema, "concurrency", limit());
        set(doc, schema, "group_concurrency", limit());
    }
    set(doc, "ThrottleSpec", "limit", limit());
    set(doc, "ThrottleSpec", "burst", limit());
    set(
        doc,
        "ThrottleSpec",
        "period",
        duration(MIN_THROTTLE_PERIOD, MAX_THROTTLE_PERIOD),
    );
    param(doc, "/v1/queues/{queue}", "queue", queue_name());
    debounced_answer(doc);
}

/// The 200 answer of `POST /v1/jobs`: a job, with `debounced: true` when a debounced enqueue matched a
/// waiting job.
fn debounced_answer(doc: &mut OpenApi) {
    let op = doc
        .paths
        .paths
        .get_mut("/v1/jobs")
        .and_then(|item| item.post.as_mut())
        .expect("the OpenAPI document has POST /v1/jobs");
    let Some(RefOr::T(response)) = op.responses.responses.get_mut("200") else {
        panic!("POST /v1/jobs has no 200 answer");
    };
    let Some(RefOr::T(content)) = response.content.get_mut("application/json") else {
        panic!("the 200 answer of POST /v1/jobs has no JSON body");
    };
    content.schema = Some(RefOr::T(Schema::AllOf(
        AllOfBuilder::new()
            .item(Ref::from_schema_name("Job"))
            .item(
                ObjectBuilder::new().schema_type(Type::Object).property(
                    "debounced",
                    ObjectBuilder::new()
                        .schema_type(Type::Boolean)
                        .description(Some(
                            "Present (true) when a debounced enqueue matched this waiting job",
                        )),
                ),
            )
            .build(),
    )));
}

/// Function ids (and app names): `offload_core::function::names::validate_function_id`.
const FUNCTION_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._:-]*$";
/// Event names: `offload_core::function::names::validate_event_name`.
const EVENT_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._:/-]*$";

/// The rules of the durable-function bodies, parameters and paths.
fn functions(doc: &mut OpenApi) {
    let function_id = || {
        string(1, MAX_FUNCTION_ID_LEN)
            .pattern(Some(FUNCTION_ID_PATTERN))
            .build()
    };
    let event_name = || {
        string(1, MAX_EVENT_NAME_LEN)
            .pattern(Some(EVENT_NAME_PATTERN))
            .build()
    };
    set(doc, "FunctionSpec", "id", function_id());
    set(doc, "FunctionSpec", "name", text(MAX_NAME_LEN).build());
    set(doc, "FunctionSpec", "queue", queue_name());
    set(
        doc,
        "FunctionSpec",
        "retries",
        integer(0, u64::from(MAX_RETRIES)).build(),
    );
    set(
        doc,
        "FunctionSpec",
        "timeout",
        duration(MIN_TIMEOUT, Duration::MAX),
    );
    bound_items(doc, "FunctionSpec", "triggers", 1, MAX_TRIGGERS);
    bound_items(doc, "FunctionSpec", "cancel_on", 0, MAX_CANCEL_ON);
    bound_items(doc, "FunctionSpec", "concurrency", 0, MAX_CONCURRENCY);
    let limit = || integer(1, u64::from(u32::MAX)).build();
    let period = || duration(MIN_THROTTLE_PERIOD, MAX_THROTTLE_PERIOD);
    set(doc, "FunctionConcurrency", "limit", limit());
    set(doc, "FunctionConcurrency", "key", field_path());
    set(doc, "FunctionThrottle", "limit", limit());
    set(doc, "FunctionThrottle", "burst", limit());
    set(doc, "FunctionThrottle", "period", period());
    set(doc, "FunctionThrottle", "key", field_path());
    set(doc, "FunctionRateLimit", "limit", limit());
    set(doc, "FunctionRateLimit", "period", period());
    set(doc, "FunctionRateLimit", "key", field_path());
    set(doc, "FunctionSingleton", "key", field_path());
    set(doc, "TriggerSpec", "event", event_name());
    set(doc, "TriggerSpec", "cron", cron());
    set(doc, "TriggerSpec", "timezone", time_zone());
    set(doc, "CancelOnSpec", "event", event_name());
    set(doc, "CancelOnSpec", "match", field_path());
    bound_items(doc, "AppSyncRequest", "functions", 0, MAX_APP_FUNCTIONS);
    set(doc, "EventRequest", "name", event_name());
    set(doc, "EventRequest", "id", text(MAX_EVENT_ID_LEN).build());
    bound_items(doc, "EventBatch", "events", 1, MAX_EVENTS_PER_REQUEST);
    set(doc, "RecordedStep", "id", text(MAX_STEP_ID_LEN).build());
    bound_items(
        doc,
        "RecordStepsRequest",
        "steps",
        1,
        MAX_RECORDED_STEPS_PER_REQUEST,
    );
    set(
        doc,
        "RecordedError",
        "retryable",
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .enum_values(Some([false]))
            .build(),
    );
    set(doc, "TriggerSpec", "if", filter());
    set(
        doc,
        "RecordedError",
        "name",
        text(MAX_ERROR_NAME_LEN).build(),
    );
    for path in ["/v1/functions", "/v1/events", "/v1/runs"] {
        param(doc, path, "limit", page_limit());
    }
    param(doc, "/v1/functions", "cursor", function_id());
    param(doc, "/v1/functions", "app", function_id());
    param(doc, "/v1/events", "name", event_name());
    param(doc, "/v1/runs", "function", function_id());
    param(
        doc,
        "/v1/runs",
        "state",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(RunState::ALL.map(RunState::as_str)))
            .build(),
    );
    param(doc, "/v1/functions/{id}", "id", function_id());
    param(doc, "/v1/apps/{app}", "app", function_id());
}

/// A field path into an event (`offload_core::function::path::FieldPath`): `data`, `name`, `id` or `ts`, then
/// `.`-separated segments without control characters.
fn field_path() -> Schema {
    let more = MAX_PATH_SEGMENTS - 1;
    string(1, MAX_PATH_LEN)
        .pattern(Some(format!(
            r"^(data|name|id|ts)(\.[^.\x00-\x1f\x7f-\x9f]+){{0,{more}}}$"
        )))
        .build()
        .into()
}

/// A trigger filter (`offload_core::function::filter`): field paths to a plain value (equality) or an object of
/// operators. The paths' grammar (`data`, `name`, `id` or `ts`, then `.`-separated segments) is stated in the
/// description: the document model has no keyword for the names of properties.
fn filter() -> Schema {
    let comparable =
        || ObjectBuilder::new().schema_type(SchemaType::Array(vec![Type::Number, Type::String]));
    let any = || ObjectBuilder::new().schema_type(SchemaType::AnyValue);
    let operators = ObjectBuilder::new()
        .schema_type(Type::Object)
        .min_properties(Some(1))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .property("eq", any())
        .property("ne", any())
        .property("gt", comparable())
        .property("gte", comparable())
        .property("lt", comparable())
        .property("lte", comparable())
        .property(
            "in",
            ArrayBuilder::new()
                .items(any())
                .max_items(Some(MAX_IN_VALUES)),
        )
        .property("exists", ObjectBuilder::new().schema_type(Type::Boolean));
    let plain = ObjectBuilder::new().schema_type(SchemaType::Array(vec![
        Type::Null,
        Type::Boolean,
        Type::Number,
        Type::String,
        Type::Array,
    ]));
    let condition = OneOfBuilder::new().item(plain).item(operators).build();
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Object, Type::Null]))
        .max_properties(Some(MAX_CONDITIONS))
        .description(Some(format!(
            "Field paths (`data.plan`: `data`, `name`, `id` or `ts`, then up to {} more `.`-separated \
             segments, at most {MAX_PATH_LEN} bytes) to a plain value (equality) or an object of operators.",
            MAX_PATH_SEGMENTS - 1
        )))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::OneOf(
            condition,
        )))))
        .build()
        .into()
}

/// A queue or schedule name.
fn queue_name() -> Schema {
    string(1, MAX_QUEUE_LEN)
        .pattern(Some(QUEUE_NAME_PATTERN))
        .build()
        .into()
}

/// A five-field cron expression.
fn cron() -> Schema {
    string(1, MAX_CRON_LEN)
        .format(Some(SchemaFormat::Custom(FORMAT_CRON.to_owned())))
        .build()
        .into()
}

/// An IANA time zone name.
fn time_zone() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom(FORMAT_TIME_ZONE.to_owned())))
        .min_length(Some(1))
        .build()
        .into()
}

/// The `limit` of a list route: 1 to `MAX_PAGE_LIMIT`.
fn page_limit() -> Schema {
    integer(1, u64::from(MAX_PAGE_LIMIT)).build().into()
}

/// A short text: 1 to `max` characters, no control character.
fn text(max: usize) -> ObjectBuilder {
    string(1, max).pattern(Some(NO_CONTROL_PATTERN))
}

fn string(min: usize, max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min))
        .max_length(Some(max))
}

fn integer(min: u64, max: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min))
        .maximum(Some(max))
}

fn http_url() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom(FORMAT_HTTP_URL.to_owned())))
        .max_length(Some(MAX_URL_LEN))
        .build()
        .into()
}

/// A duration between `min` and `max`: integer milliseconds (bounds stated) or text in the duration syntax.
fn duration(min: Duration, max: Duration) -> Schema {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut integer = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(ms(min)))
        .description(Some("milliseconds"));
    if max != Duration::MAX {
        integer = integer.maximum(Some(ms(max)));
    }
    let bounds = match max {
        Duration::MAX => format!("at least {}", offload_core::DurationSpec(min)),
        _ => format!(
            "{} to {}",
            offload_core::DurationSpec(min),
            offload_core::DurationSpec(max)
        ),
    };
    OneOfBuilder::new()
        .item(integer)
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::Custom(FORMAT_DURATION.to_owned())))
                .description(Some(format!(
                    "a duration such as \"30s\", \"5m\", \"1h30m\", \"2d\" or \"PT5M\", {bounds}"
                ))),
        )
        .build()
        .into()
}

/// `text` matching ASCII letters in either case, for patterns (ECMA-262 has no inline case flag).
fn caseless(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else {
                regex_escape(&c.to_string())
            }
        })
        .collect()
}

/// `text` as a literal in a pattern: only syntax characters are escaped (ECMA-262's Unicode mode refuses
/// needless escapes such as `\-`).
fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if "^$\\.*+?()[]{}|/".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The schema of `name` in `doc`'s components.
fn component<'a>(doc: &'a mut OpenApi, name: &str) -> &'a mut utoipa::openapi::schema::Object {
    let schema = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut(name));
    match schema {
        Some(RefOr::T(Schema::Object(object))) => object,
        _ => panic!("the OpenAPI document has no object schema {name}"),
    }
}

/// The items of the array property `field` of `schema`.
fn items_of(doc: &mut OpenApi, schema: &str, field: &str) -> RefOr<Schema> {
    match component(doc, schema).properties.get(field) {
        Some(RefOr::T(Schema::Array(array))) => match &array.items {
            utoipa::openapi::schema::ArrayItems::RefOrSchema(items) => (**items).clone(),
            utoipa::openapi::schema::ArrayItems::False => panic!("{schema}.{field} has no items"),
        },
        _ => panic!("{schema}.{field} is not an array"),
    }
}

/// Bounds the array property `field` of `schema` to `min..=max` items (`min` 0 sets no lower bound),
/// keeping its items.
fn bound_items(doc: &mut OpenApi, schema: &str, field: &str, min: usize, max: usize) {
    let items = items_of(doc, schema, field);
    set(
        doc,
        schema,
        field,
        ArrayBuilder::new()
            .items(items)
            .min_items((min > 0).then_some(min))
            .max_items(Some(max))
            .build(),
    );
}

/// Replaces property `field` of `schema` with `new`, keeping its description and whether it may be null.
fn set(doc: &mut OpenApi, schema: &str, field: &str, new: impl Into<Schema>) {
    let object = component(doc, schema);
    let Some(old) = object.properties.get_mut(field) else {
        panic!("the OpenAPI schema {schema} has no property {field}");
    };
    *old = restyle(old, new.into(), true);
}

/// Replaces the schema of parameter `name` of every operation on `path` with `new`.
fn param(doc: &mut OpenApi, path: &str, name: &str, new: impl Into<Schema>) {
    let new = new.into();
    let Some(item) = doc.paths.paths.get_mut(path) else {
        panic!("the OpenAPI document has no path {path}");
    };
    let mut found = false;
    for op in [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
    {
        for parameter in op.parameters.iter_mut().flatten() {
            if let RefOr::T(parameter) = parameter
                && parameter.name == name
            {
                // Parameters are never null (an absent one is left out), so only the description is kept.
                let old = parameter
                    .schema
                    .take()
                    .unwrap_or(RefOr::T(Schema::default()));
                parameter.schema = Some(restyle(&old, new.clone(), false));
                found = true;
            }
        }
    }
    assert!(found, "no operation on {path} has the parameter {name}");
}

/// `new` with the description of `old`, and nullable when `old` was and `keep_null` says so.
fn restyle(old: &RefOr<Schema>, new: Schema, keep_null: bool) -> RefOr<Schema> {
    let old = serde_json::to_value(old).expect("schemas serialize");
    let branches = old.get("oneOf").and_then(|b| b.as_array());
    let nullable = match (old.get("type"), branches) {
        (Some(serde_json::Value::Array(types)), _) => types.iter().any(|t| t == "null"),
        (_, Some(branches)) => branches.iter().any(|b| b["type"] == "null"),
        _ => false,
    };
    let description = old
        .get("description")
        .or_else(|| branches.and_then(|b| b.iter().find_map(|b| b.get("description"))))
        .and_then(|d| d.as_str())
        .map(str::to_owned);
    let mut new = new;
    if nullable && keep_null {
        new = match new {
            Schema::Object(mut object) => {
                if let SchemaType::Type(t) = object.schema_type {
                    object.schema_type = SchemaType::from_iter([t, Type::Null]);
                }
                Schema::Object(object)
            }
            Schema::OneOf(mut one_of) => {
                one_of
                    .items
                    .push(ObjectBuilder::new().schema_type(Type::Null).into());
                Schema::OneOf(one_of)
            }
            other => other,
        };
    }
    if let Some(description) = description {
        match &mut new {
            Schema::Object(object) if object.description.is_none() => {
                object.description = Some(description);
            }
            Schema::OneOf(one_of) => one_of.description = Some(description),
            Schema::Array(array) => array.description = Some(description),
            _ => {}
        }
    }
    RefOr::T(new)
}

#[cfg(test)]
mod tests {
    #[test]
    fn literals_in_patterns_escape_only_syntax_characters() {
        assert_eq!(super::caseless("Te-1."), "[Tt][Ee]-1\\.");
        assert_eq!(super::regex_escape("offload."), "offload\\.");
        assert_eq!(super::regex_escape("keep-alive"), "keep-alive");
    }
}
