//! The OpenAPI 3.1 document of the API, generated from the code.
//!
//! Invariant: the document and the router come from the same list ([`crate::api_routes`]): a route is added
//! by annotating its handler with `#[utoipa::path]` and naming it once in that list, and its request and
//! response schemas are collected from the annotation (the wire types derive `ToSchema` in `offload-core`
//! behind its `openapi` feature). What every operation shares (optional bearer auth, problem+json errors) is
//! added here, once, to every operation, and the rules the validators check on single values are added to the
//! schemas by [`constraints`], from the same constants and limits.

use offload_core::spec::Limits;
use utoipa::Modify;
use utoipa::OpenApi as _;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref};

mod constraints;
pub(crate) mod functions;

/// Where the document is served.
pub(crate) const PATH: &str = "/openapi.json";

/// The parts of the document no handler declares: info, tags, security, shared schemas.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Offload",
        description = "Background jobs over HTTP: enqueue jobs, work them from any language, inspect and steer them. \
                       Errors are `application/problem+json` with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(offload_core::api::Problem)),
    tags(
        (name = "jobs", description = "Enqueue, read, list, cancel, retry and delete jobs"),
        (name = "workers", description = "Pull workers: claim, heartbeat, complete and fail"),
        (name = "queues", description = "Queues: counts by state, pause and resume"),
        (name = "schedules", description = "Cron schedules: create or replace, list, read, delete, pause, resume and trigger"),
        (name = "functions", description = "Durable functions: register, list, read, remove, and sync an app's whole set"),
        (name = "events", description = "Events: send (fanned out to runs, waits and cancels), list and read"),
        (name = "runs", description = "Function runs: list, read with their steps, cancel, retry, and record steps within a call"),
        (name = "logs", description = "Log lines of jobs and runs: append (the newest 1,000 per job or run are kept) and read"),
        (name = "health", description = "Liveness and readiness"),
    ),
)]
struct Base;

/// Adds the bearer scheme and the problem responses to every operation. Bearer auth is optional: a server
/// without `api_tokens` (loopback only) takes requests without one.
struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "One of the server's `api_tokens`; not needed when none is configured",
                    ))
                    .build(),
            ),
        );
        let problem = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
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
                if op.security.is_none() {
                    op.security = Some(vec![
                        SecurityRequirement::default(),
                        SecurityRequirement::new("bearer", [""; 0]),
                    ]);
                }
                let responses = &mut op.responses.responses;
                responses.entry("4XX".to_owned()).or_insert_with(|| {
                    problem("Refused: the `code` says why (see the README's error codes)").into()
                });
                responses.entry("5XX".to_owned()).or_insert_with(|| {
                    problem("The server or its store failed; nothing was written").into()
                });
            }
        }
    }
}

/// The shared parts merged with the paths the router registered, with the constraints of a server that
/// applies `limits`.
pub(crate) fn document(paths: OpenApi, limits: &Limits) -> OpenApi {
    let mut doc = Base::openapi();
    doc.merge(paths);
    Shared.modify(&mut doc);
    constraints::apply(&mut doc, limits);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}
