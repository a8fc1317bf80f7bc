/**
 * Types of Offload's HTTP API, generated from the server's `/openapi.json` by openapi-typescript.
 * Do not edit: run `npm run generate` (with OFFLOAD_BIN pointing at the server binary) after an API change.
 */

export interface paths {
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * 200 `ok` when the store answers; 503 `unavailable` when it does not, `draining` while the server stops
         *     (so load balancers send new work elsewhere).
         */
        get: operations["healthz"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/apps/{app}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** `PUT /v1/apps/{app}`: 200 with what changed. */
        put: operations["sync_app"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/events`: stored events, newest first; a full page carries `next_cursor`. */
        get: operations["list_events"];
        put?: never;
        /** `POST /v1/events`: 201 with each event's id and the runs it started; 200 when every event was a duplicate. */
        post: operations["send_events"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/events/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/events/{id}`: one event with the runs it started. */
        get: operations["get_event"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/functions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/functions`: registered functions by id; a full page carries `next_cursor`. */
        get: operations["list_functions"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/functions/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/functions/{id}`: one registered function. */
        get: operations["get_function"];
        /** `PUT /v1/functions/{id}`: 201 with the new function, 200 with the replaced one. */
        put: operations["put_function"];
        post?: never;
        /** `DELETE /v1/functions/{id}`: 204; the function starts no more runs, its runs keep going. */
        delete: operations["delete_function"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/jobs`: a filtered page, newest first. A full page carries `next_cursor`. */
        get: operations["list_jobs"];
        put?: never;
        /**
         * `POST /v1/jobs`: 201 with the new job; 200 with the existing job for an idempotent replay, and 200 with
         *     the waiting job that took this enqueue's payload and start, marked `"debounced": true`, for a debounced
         *     enqueue that matched one.
         */
        post: operations["enqueue"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/jobs/{id}`: the job with its attempt history. */
        get: operations["get_job"];
        put?: never;
        post?: never;
        /** `DELETE /v1/jobs/{id}`: 204; refused while the job runs. */
        delete: operations["delete_job"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/{id}/abort": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * `POST /v1/jobs/{id}/abort`: the worker ends the job as cancelled, with no further attempt. An over-long
         *     reason is cut to [`MAX_ERROR_LEN`], like a failure's error.
         */
        post: operations["abort"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/{id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * `POST /v1/jobs/{id}/cancel`: at once unless running; a running job gets a cancel request its worker
         *     sees on the next heartbeat.
         */
        post: operations["cancel_job"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/{id}/complete": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/jobs/{id}/complete`: the attempt succeeded, with an optional JSON result. */
        post: operations["complete"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/{id}/fail": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/jobs/{id}/fail`: the attempt failed; the retry policy decides between retrying and dead. */
        post: operations["fail"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/{id}/heartbeat": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/jobs/{id}/heartbeat`: extends the lease, records progress, tells whether a cancel was asked. */
        post: operations["heartbeat"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/{id}/logs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/jobs/{id}/logs`: a job's lines, oldest first. */
        get: operations["list_job_logs"];
        put?: never;
        /** `POST /v1/jobs/{id}/logs`: append lines to a job. */
        post: operations["append_job_logs"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/{id}/retry": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/jobs/{id}/retry`: a dead or cancelled job becomes available again. */
        post: operations["retry_job"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/{id}/snooze": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/jobs/{id}/snooze`: run the job again after `delay` without using up an attempt. */
        post: operations["snooze"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/batch": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/jobs/batch`: validates every job, then stores all of them in one transaction or none. */
        post: operations["enqueue_batch"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/complete": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/jobs/complete`: many completions in one commit, answered per item. */
        post: operations["complete_batch"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/jobs/fail": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/jobs/fail`: many failures in one commit, answered per item. */
        post: operations["fail_batch"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/queues": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/queues`: every queue with its counts per state. */
        get: operations["list_queues"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/queues/{queue}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * `GET /v1/queues/{queue}`: one queue with its counts, limits and live usage (running jobs, groups running,
         *     when the throttle lets the next job start, the groups with most available jobs).
         */
        get: operations["get_queue"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        /**
         * `PATCH /v1/queues/{queue}`: changes the queue's limits (a queue can be limited before its first job).
         *     Absent fields keep their value, `null` removes a limit. A lowered limit lets running jobs finish.
         */
        patch: operations["set_queue_limits"];
        trace?: never;
    };
    "/v1/queues/{queue}/claim": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/queues/{queue}/claim`: up to `max_jobs` jobs, long-polling up to `wait` when none is available. */
        post: operations["claim"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/queues/{queue}/pause": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * `POST /v1/queues/{queue}/pause`: claims of the queue return nothing until it is resumed. A queue can be
         *     paused before its first job.
         */
        post: operations["pause_queue"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/queues/{queue}/resume": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/queues/{queue}/resume`: claims hand out the queue's jobs again (and waiting claimers wake). */
        post: operations["resume_queue"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/runs`: runs newest first, filtered; a full page carries `next_cursor`. */
        get: operations["list_runs"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/runs/{id}`: one run. */
        get: operations["get_run"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs/{id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/runs/{id}/cancel`: the cancelled run (409 `invalid_state` once it has ended). */
        post: operations["cancel_run"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs/{id}/logs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/runs/{id}/logs`: a run's lines, oldest first. */
        get: operations["list_run_logs"];
        put?: never;
        /** `POST /v1/runs/{id}/logs`: append lines to a run (no lease token). */
        post: operations["append_run_logs"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs/{id}/retry": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/runs/{id}/retry`: the resumed run (409 `invalid_state` unless failed or cancelled). */
        post: operations["retry_run"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/runs/{id}/steps": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/runs/{id}/steps`: the run's steps with their attempts, in the order first seen. */
        get: operations["list_run_steps"];
        put?: never;
        /**
         * `POST /v1/runs/{id}/steps`: records `run` steps a pull worker ran within its call's lease, before it
         *     completes the call (a stale `lease_token` is refused with `lease_mismatch`); the run, with its new count.
         */
        post: operations["record_run_steps"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/schedules": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/schedules`: schedules in name order; a full page carries `next_cursor`. */
        get: operations["list_schedules"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/schedules/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** `GET /v1/schedules/{name}`: the schedule with its next fire times and recent ticks (with their jobs). */
        get: operations["get_schedule"];
        /** `PUT /v1/schedules/{name}`: 201 with the new schedule, 200 with the replaced one. */
        put: operations["put_schedule"];
        post?: never;
        /** `DELETE /v1/schedules/{name}`: 204; the schedule's jobs stay. */
        delete: operations["delete_schedule"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/schedules/{name}/pause": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/schedules/{name}/pause`: the schedule fires nothing until resumed. */
        post: operations["pause_schedule"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/schedules/{name}/resume": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/schedules/{name}/resume`: fires again; ticks due while paused follow the catch-up policy. */
        post: operations["resume_schedule"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/schedules/{name}/trigger": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** `POST /v1/schedules/{name}/trigger`: 201 with the job created now, whatever the overlap policy and pause. */
        post: operations["trigger_schedule"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description `POST /v1/jobs/{id}/abort`: the worker ends the job as `cancelled`, with no further attempt. */
        AbortRequest: {
            /** @description The claim's fencing token. */
            lease_token: components["schemas"]["LeaseToken"];
            /** @description Why, kept as the attempt's error. */
            reason?: string | null;
        };
        /** @description `PUT /v1/apps/{app}`: the app's whole set of functions. */
        AppSyncRequest: {
            /** @description Every function of the app, each with its `id`. */
            functions: components["schemas"]["FunctionSpec"][];
        };
        /** @description What an app sync did, by function id. */
        AppSyncView: {
            /** @description Registered for the first time. */
            created: string[];
            /** @description The app's functions missing from the set, now removed; their runs keep going. */
            removed: string[];
            /** @description Left as they were (nothing written). */
            unchanged: string[];
            /** @description Definition changed. */
            updated: string[];
        };
        /** @description One execution of a job, as kept in its history. */
        Attempt: {
            /**
             * Format: int32
             * @description 1 for the first attempt.
             */
            attempt: number;
            /** @description The error reported, or why the attempt was ended. */
            error?: string | null;
            /**
             * Format: date-time
             * @description When it ended; absent while running.
             */
            finished_at?: string | null;
            /** @description How it ended. */
            outcome: components["schemas"]["AttemptOutcome"];
            /**
             * Format: date-time
             * @description When the worker claimed it.
             */
            started_at: string;
            /** @description The worker that claimed it. */
            worker_id?: string | null;
        };
        /**
         * @description How one attempt ended.
         * @enum {string}
         */
        AttemptOutcome: "running" | "succeeded" | "failed" | "lease_expired" | "cancelled" | "snoozed";
        /** @description A failed attempt of a step. */
        AttemptView: {
            /**
             * Format: date-time
             * @description When it was reported.
             */
            at: string;
            /**
             * Format: int32
             * @description 1 for the first.
             */
            attempt: number;
            /** @description Its error. */
            error: components["schemas"]["ErrorView"];
        };
        /** @description A job's retry delay policy. */
        Backoff: {
            /** @description Delay after the first failed attempt. */
            base?: number | string;
            /** @description The longest delay, whatever the attempt number. */
            cap?: number | string;
            /**
             * Format: double
             * @description Fraction (0.0 to 1.0) of the exponential delay that may be randomly taken off, so that jobs failing
             *     together do not all come back at the same instant.
             */
            jitter?: number;
        };
        /** @description Cancels a run when an event named `event` arrives whose `match` field equals the run's event's. */
        CancelOnSpec: {
            /** @description The cancelling event's name. */
            event: string;
            /**
             * @description A field path compared between the two events, e.g. `data.user_id`; without it every run of the
             *     function is cancelled.
             */
            match?: string | null;
        };
        /**
         * @description Which ticks that were due while the server was down (or the schedule paused) still run.
         * @enum {string}
         */
        CatchUp: "none" | "latest" | "all";
        /** @description A job handed to a pull worker: what it needs to do the work and to report back. */
        ClaimedJob: {
            /**
             * Format: int32
             * @description This attempt's number (1 for the first).
             */
            attempt: number;
            /**
             * Format: date-time
             * @description When it was enqueued.
             */
            created_at: string;
            /** @description Identity. */
            id: components["schemas"]["JobId"];
            /**
             * Format: date-time
             * @description The lease ends here unless a heartbeat extends it.
             */
            lease_expires_at: string;
            /** @description Fencing token to present on heartbeat, complete and fail. */
            lease_token: components["schemas"]["LeaseToken"];
            /**
             * Format: int32
             * @description Attempts allowed.
             */
            max_attempts: number;
            /** @description Job kind, if given. */
            name?: string | null;
            /** @description The payload as the user sent it. */
            payload: unknown;
            /** @description Queue it came from. */
            queue: string;
            /**
             * Format: date-time
             * @description When it was due (its first `run_at`, or the end of its last backoff): the claim's wait is measured
             *     from here.
             */
            run_at: string;
            /** @description Labels. */
            tags?: {
                [key: string]: string;
            };
            /** @description Lease length a heartbeat extends by. */
            timeout: components["schemas"]["DurationSpec"];
        };
        /** @description `POST /v1/queues/{queue}/claim`. */
        ClaimRequest: {
            /** @description Most jobs to return (1 to 1000, default 1). */
            max_jobs?: number | null;
            /** @description Long poll: when no job is available, wait up to this long (at most 60 s) for one. */
            wait?: number | string | null;
            /** @description Who is claiming; recorded on the attempt. */
            worker_id: string;
        };
        /** @description Answer of a claim: possibly empty. */
        ClaimResponse: {
            /** @description The claimed jobs, highest priority first. */
            jobs: components["schemas"]["ClaimedJob"][];
        };
        /** @description `POST /v1/jobs/complete`: many completions in one request and one commit. */
        CompleteBatchRequest: {
            /** @description The completions. */
            jobs: components["schemas"]["CompleteItem"][];
        };
        /** @description One completion within `POST /v1/jobs/complete`. */
        CompleteItem: {
            /** @description The job. */
            id: components["schemas"]["JobId"];
            /** @description The claim's fencing token. */
            lease_token: components["schemas"]["LeaseToken"];
            /** @description Any JSON result. */
            result?: unknown;
        };
        /** @description `POST /v1/jobs/{id}/complete`. */
        CompleteRequest: {
            /** @description The claim's fencing token. */
            lease_token: components["schemas"]["LeaseToken"];
            /** @description Any JSON result to keep on the job. */
            result?: unknown;
        };
        /** @description Debounce as users write it on enqueue. */
        DebounceSpec: {
            /** @description Jobs of one queue with the same key debounce each other. */
            key: string;
            /**
             * @description Longest delay after the first enqueue (default: no cap beyond the queue's maximum delay); at least
             *     `period`.
             */
            max_wait?: number | string | null;
            /** @description Quiet time after the last enqueue before the job starts (at least 1 ms). */
            period: number | string;
        };
        /** @description A non-negative duration: text or integer milliseconds. */
        DurationSpec: number | string;
        /** @description `POST /v1/jobs/batch`: all jobs are stored in one transaction, or none is. */
        EnqueueBatchRequest: {
            /** @description The jobs, each as for `POST /v1/jobs`. */
            jobs: components["schemas"]["EnqueueRequest"][];
        };
        /** @description Answer of `POST /v1/jobs/batch`. */
        EnqueueBatchResponse: {
            /** @description One entry per requested job, in request order. */
            jobs: components["schemas"]["EnqueuedJob"][];
        };
        /** @description One entry of a batch enqueue answer, in request order. */
        EnqueuedJob: {
            /**
             * @description True when a debounce key matched a waiting job, which took this enqueue's payload and start instead of
             *     a new job being stored.
             */
            debounced?: boolean;
            /** @description True when an idempotency key matched an existing job and nothing new was stored. */
            duplicate: boolean;
            /** @description The job's id (the existing job's, for an idempotent replay). */
            id: components["schemas"]["JobId"];
            /** @description Its state right after the enqueue. */
            state: components["schemas"]["JobState"];
        };
        /** @description A request to enqueue one job, exactly as the API accepts it. Unknown fields are refused. */
        EnqueueRequest: {
            backoff?: components["schemas"]["Backoff"] | null;
            debounce?: components["schemas"]["DebounceSpec"] | null;
            /** @description First run after this delay. Exclusive with `run_at`. */
            delay?: number | string | null;
            /** @description The tenant, user or account the job belongs to: 1 to 128 bytes of UTF-8 without control characters */
            group?: string | null;
            /** @description De-duplication key (also accepted as the `Idempotency-Key` header). */
            idempotency_key?: string | null;
            /** @description Attempts allowed before the job is dead. */
            max_attempts?: number | null;
            /** @description Job kind, which workers dispatch on. */
            name?: string | null;
            /** @description Any JSON value; `null` when absent. */
            payload?: unknown;
            /**
             * Format: int32
             * @description Higher runs first (default 0).
             */
            priority?: number | null;
            /** @description Queue name: 1 to 128 ASCII letters, digits and `-_.:`; names starting with `offload.` are reserved */
            queue: string;
            /**
             * Format: date-time
             * @description First run at this instant (RFC 3339). Exclusive with `delay`.
             */
            run_at?: string | null;
            /** @description Labels for filtering. */
            tags?: {
                [key: string]: string;
            } | null;
            target?: components["schemas"]["Target"] | null;
            /** @description Lease length of one attempt; a worker must heartbeat within it. */
            timeout?: number | string | null;
        };
        /** @description An error a step or a run ended with. */
        ErrorView: {
            /** @description What went wrong. */
            message: string;
            /** @description The error's class. */
            name: string;
        };
        /** @description Several events, all or nothing. */
        EventBatch: {
            /** @description The events. */
            events: components["schemas"]["EventRequest"][];
        };
        /** @description `GET /v1/events`: newest first. */
        EventList: {
            /** @description The events. */
            events: components["schemas"]["EventView"][];
            /**
             * Format: uuid
             * @description Pass as `before` for the next page (only on a full page).
             */
            next_cursor?: string | null;
        };
        /** @description One event. */
        EventRequest: {
            /** @description A JSON object (default `{}`). */
            data?: {
                [key: string]: unknown;
            } | null;
            /** @description De-duplication key: an event whose id was seen within retention starts nothing again. */
            id?: string | null;
            /** @description The event's name, e.g. `app/user.signup`. */
            name: string;
            /**
             * Format: date-time
             * @description When it happened (default: when the server received it).
             */
            ts?: string | null;
        };
        /** @description `POST /v1/events`: one event, or `{"events": [...]}`. */
        EventsRequest: components["schemas"]["EventRequest"] | components["schemas"]["EventBatch"];
        /** @description What `POST /v1/events` did, in request order. */
        EventsSent: {
            /** @description Each event's id (for a duplicate: the first event's). */
            ids: string[];
            /** @description The runs each event started (for a duplicate: the runs the first event started). */
            runs: string[][];
        };
        /** @description A stored event, with the runs it started. */
        EventView: {
            /** @description Its data (a JSON object). */
            data: Record<string, never>;
            /**
             * Format: uuid
             * @description The server's id.
             */
            id: string;
            /** @description Its name. */
            name: string;
            /**
             * Format: date-time
             * @description When the server stored it.
             */
            received_at: string;
            /** @description Runs it started. */
            runs: string[];
            /** @description Functions it triggered but started no run of, and why (absent when none). */
            skipped?: components["schemas"]["SkippedView"][];
            /**
             * Format: date-time
             * @description When it happened (the sender's `ts`, else when received).
             */
            ts: string;
            /** @description The sender's de-duplication id. */
            user_id?: string | null;
        };
        /** @description `POST /v1/jobs/fail`: many failures in one request and one commit. */
        FailBatchRequest: {
            /** @description The failures. */
            jobs: components["schemas"]["FailItem"][];
        };
        /** @description One failure within `POST /v1/jobs/fail`. */
        FailItem: {
            /** @description What went wrong. */
            error: string;
            /** @description The job. */
            id: components["schemas"]["JobId"];
            /** @description The claim's fencing token. */
            lease_token: components["schemas"]["LeaseToken"];
            /** @description Retry after this delay instead of the job's backoff. */
            retry_after?: number | string | null;
            /** @description `false`: do not retry. */
            retryable?: boolean | null;
        };
        /** @description `POST /v1/jobs/{id}/fail`. */
        FailRequest: {
            /** @description What went wrong. */
            error: string;
            /** @description The claim's fencing token. */
            lease_token: components["schemas"]["LeaseToken"];
            /** @description Retry after this delay instead of the job's backoff. */
            retry_after?: number | string | null;
            /** @description `false`: do not retry; the job goes dead at once (default true). */
            retryable?: boolean | null;
        };
        /** @description Answer of the batch completion and failure endpoints. */
        FinishBatchResponse: {
            /** @description One entry per item, in request order. */
            jobs: components["schemas"]["FinishResult"][];
        };
        /** @description Answer of a single completion or failure: the job's state afterwards. */
        FinishedJob: {
            /** @description The job. */
            id: components["schemas"]["JobId"];
            /** @description Its state afterwards. */
            state: components["schemas"]["JobState"];
        };
        /** @description Per-job answer within a batch completion or failure. */
        FinishResult: {
            /** @description Why it was refused: `lease_mismatch` (stale token, job rescued or already finished) or `not_found`. */
            code?: string | null;
            /** @description The job. */
            id: components["schemas"]["JobId"];
            /** @description True when the report was applied. */
            ok: boolean;
            state?: components["schemas"]["JobState"] | null;
        };
        /** @description One concurrency limit of a function. */
        FunctionConcurrency: {
            /**
             * @description A field path into the event, e.g. `data.account_id`: the limit holds per value of it. An event without
             *     the field gives calls that only the limit without a key counts.
             */
            key?: string | null;
            /** @description Most running calls (at least 1). */
            limit: number;
        };
        /** @description `GET /v1/functions`: a page of functions by id. */
        FunctionList: {
            /** @description The functions. */
            functions: components["schemas"]["FunctionView"][];
            /** @description Pass as `cursor` for the next page (only on a full page). */
            next_cursor?: string | null;
        };
        /** @description A function's rate limit: at most `limit` runs started in a quiet `period`, then one per `period / limit`. */
        FunctionRateLimit: {
            /** @description A field path into the event: one limit per value. An event without the field is not limited. */
            key?: string | null;
            /** @description Runs per period (at least 1). */
            limit: number;
            /** @description The period (at least 1 ms). */
            period: number | string;
        };
        /** @description A function's singleton: at most one live (not succeeded, failed or cancelled) run per key value. */
        FunctionSingleton: {
            /**
             * @description A field path into the event: one live run per value (without: one for the function). An event without
             *     the field starts a run that is no singleton.
             */
            key?: string | null;
            /** @description `skip` or `cancel`. */
            mode: components["schemas"]["SingletonMode"];
        };
        /** @description A function definition (`PUT /v1/functions/{id}`, one entry of `PUT /v1/apps/{app}`). */
        FunctionSpec: {
            backoff?: components["schemas"]["Backoff"] | null;
            /** @description Events that cancel a running, sleeping or waiting run. */
            cancel_on?: components["schemas"]["CancelOnSpec"][];
            /**
             * @description Most running calls: up to two limits, at most one without `key` (the queue's `concurrency`) and at most
             *     one with (the queue's `group_concurrency`, per value of the key in the run's event). Registering the
             *     function writes them, with `throttle`, as its queue's limits; functions sharing a queue share them.
             */
            concurrency?: components["schemas"]["FunctionConcurrency"][];
            /** @description Stable id (required in an app sync; in `PUT /v1/functions/{id}` absent or equal to the path's). */
            id?: string | null;
            /** @description Human name shown in the dashboard. */
            name?: string | null;
            /** @description Queue of the calls (default: the function id). */
            queue?: string | null;
            rate_limit?: components["schemas"]["FunctionRateLimit"] | null;
            /** @description Retries of a failed step, and of a call that failed outside any step (default 4). */
            retries?: number | null;
            singleton?: components["schemas"]["FunctionSingleton"] | null;
            target?: components["schemas"]["Target"] | null;
            throttle?: components["schemas"]["FunctionThrottle"] | null;
            /** @description Lease of one call (default 5 minutes). */
            timeout?: number | string | null;
            /** @description What starts a run: events by name (with an optional filter) or a cron schedule. At least one. */
            triggers: components["schemas"]["TriggerSpec"][];
        };
        /** @description A function's throttle: at most `limit` call starts per `period`, `burst` at once after a quiet spell. */
        FunctionThrottle: {
            /** @description Starts allowed at once (default 1). */
            burst?: number | null;
            /**
             * @description A field path into the event: one throttle per value. Must equal the keyed concurrency's key, if any
             *     (a call has one group).
             */
            key?: string | null;
            /** @description Starts per period (at least 1). */
            limit: number;
            /** @description The period (at least 1 ms). */
            period: number | string;
        };
        /**
         * @description A registered function: its definition as registered, with the values the server resolved (`queue`,
         *     `retries`, `timeout`), the app that synced it and its times.
         */
        FunctionView: {
            /** @description The app that registered it through `PUT /v1/apps/{app}` (`offload.toml` for the configuration file). */
            app?: string | null;
            /** @description Delay between retries. */
            backoff: components["schemas"]["Backoff"];
            /** @description Events that cancel runs, as registered. */
            cancel_on: components["schemas"]["CancelOnSpec"][];
            /**
             * Format: date-time
             * @description First registration.
             */
            created_at: string;
            /** @description Stable id. */
            id: string;
            /** @description Human name. */
            name?: string | null;
            /** @description Queue of the calls (pull workers claim them there). */
            queue: string;
            /**
             * Format: int32
             * @description Retries of a failed step or call.
             */
            retries: number;
            target?: components["schemas"]["Target"] | null;
            /** @description Lease of one call. */
            timeout: components["schemas"]["DurationSpec"];
            /** @description What starts a run, as registered. */
            triggers: components["schemas"]["TriggerSpec"][];
            /**
             * Format: date-time
             * @description Last change.
             */
            updated_at: string;
        };
        /** @description One group of a queue, for [`QueueUsage::top_groups`]. */
        GroupUsage: {
            /**
             * Format: int64
             * @description Its available jobs.
             */
            available: number;
            /** @description The group. */
            group: string;
            /**
             * Format: int64
             * @description Its running jobs.
             */
            running: number;
        };
        /** @description Answer of `GET /healthz`. */
        Health: {
            /** @description `ok` when the store answers. */
            status: string;
            /** @description Server version. */
            version: string;
        };
        /** @description `POST /v1/jobs/{id}/heartbeat`. */
        HeartbeatRequest: {
            /** @description The claim's fencing token. */
            lease_token: components["schemas"]["LeaseToken"];
            /** @description A short progress message. */
            message?: string | null;
            /** @description Progress, 0 to 100. */
            progress?: number | null;
        };
        /** @description Answer of a heartbeat. */
        HeartbeatResponse: {
            /** @description A user asked to cancel: stop the work and call fail (the job then ends as cancelled). */
            cancel_requested: boolean;
            /**
             * Format: date-time
             * @description The extended lease deadline.
             */
            lease_expires_at: string;
        };
        /** @description A stored job, as the API shows it. */
        Job: {
            /**
             * Format: int32
             * @description Attempts started so far.
             */
            attempt: number;
            /**
             * Format: date-time
             * @description When the current or last attempt started.
             */
            attempted_at?: string | null;
            /** @description Attempt history, oldest first; present on single-job reads, absent in lists. */
            attempts?: components["schemas"]["Attempt"][] | null;
            /** @description Retry delay policy. */
            backoff: components["schemas"]["Backoff"];
            /** @description A user asked to cancel while it was running; the worker sees this on its next heartbeat. */
            cancel_requested?: boolean;
            /**
             * Format: date-time
             * @description When it was enqueued.
             */
            created_at: string;
            /** @description The debounce key it was enqueued with, if any. */
            debounce_key?: string | null;
            /**
             * Format: date-time
             * @description When it reached a finished state.
             */
            finished_at?: string | null;
            /** @description The tenant, user or account the job belongs to, if given. */
            group?: string | null;
            /** @description Identity. */
            id: components["schemas"]["JobId"];
            /** @description De-duplication key. */
            idempotency_key?: string | null;
            /** @description The last error reported. */
            last_error?: string | null;
            /**
             * Format: date-time
             * @description Lease deadline while running.
             */
            lease_expires_at?: string | null;
            /**
             * Format: int32
             * @description Attempts allowed.
             */
            max_attempts: number;
            /** @description Job kind, if given. */
            name?: string | null;
            /** @description The payload as the user sent it. */
            payload: unknown;
            /**
             * Format: int32
             * @description Higher runs first.
             */
            priority: number;
            progress?: components["schemas"]["Progress"] | null;
            /** @description Queue it belongs to. */
            queue: string;
            /** @description The result the worker completed it with. */
            result?: unknown;
            /**
             * Format: date-time
             * @description When it is (or was) due to run.
             */
            run_at: string;
            schedule?: components["schemas"]["ScheduledBy"] | null;
            /** @description Current state. */
            state: components["schemas"]["JobState"];
            /** @description Labels. */
            tags?: {
                [key: string]: string;
            };
            target?: components["schemas"]["Target"] | null;
            /** @description Lease length of one attempt. */
            timeout: components["schemas"]["DurationSpec"];
            waiting_for?: components["schemas"]["WaitingFor"] | null;
            /** @description The worker holding it while running (or that ran it last). */
            worker_id?: string | null;
        };
        /**
         * Format: uuid
         * @description A job's identity. UUIDv7, so newer jobs sort after older ones and "newest first" is an index scan.
         */
        JobId: string;
        /**
         * @description Where a job is in its life. See DESIGN.md for the diagram; [`crate::state`] holds every transition.
         * @enum {string}
         */
        JobState: "scheduled" | "available" | "running" | "retrying" | "succeeded" | "dead" | "cancelled";
        /**
         * @description A validated job template: every field resolved. New job fields (a push target) are added here and in
         *     [`JobTemplate::new_job`].
         */
        JobTemplate: {
            /**
             * Format: int32
             * @description Attempts allowed.
             */
            max_attempts: number;
            /** @description Job kind. */
            name?: string | null;
            /** @description The payload, compact JSON. */
            payload: unknown;
            /**
             * Format: int32
             * @description Higher runs first.
             */
            priority: number;
            /** @description Queue the jobs go to. */
            queue: string;
            target?: components["schemas"]["Target"] | null;
            /** @description Lease length of one attempt. */
            timeout: components["schemas"]["DurationSpec"];
        };
        /** @description The job each tick creates, as users write it. Unknown fields are refused. */
        JobTemplateSpec: {
            /** @description Attempts allowed (default: the server's default). */
            max_attempts?: number | null;
            /** @description Job kind, which workers dispatch on. */
            name?: string | null;
            /** @description Any JSON value (stored as compact JSON); `null` when absent. */
            payload?: unknown;
            /**
             * Format: int32
             * @description Higher runs first (default 0).
             */
            priority?: number | null;
            /** @description Queue name: 1 to 128 ASCII letters, digits and `-_.:`; names starting with `offload.` are reserved */
            queue: string;
            target?: components["schemas"]["Target"] | null;
            /** @description Lease length of one attempt (default: the server's default). */
            timeout?: number | string | null;
        };
        /**
         * Format: uuid
         * @description The fencing token of one claimed attempt.
         *
         *     A worker must present it to heartbeat, complete or fail the attempt. Every claim draws a new random token,
         *     so a worker whose lease expired (and whose job was rescued and perhaps claimed again) can never overwrite
         *     the newer attempt: its token no longer matches.
         */
        LeaseToken: string;
        /** @description Answer of an append: the numbers the lines got. */
        LogAppended: {
            /**
             * Format: int64
             * @description The first appended line's `seq`.
             */
            first_seq: number;
            /**
             * Format: int64
             * @description The last appended line's `seq`.
             */
            last_seq: number;
        };
        /** @description `POST /v1/jobs/{id}/logs` and `POST /v1/runs/{id}/logs`. */
        LogAppendRequest: {
            lease_token?: components["schemas"]["LeaseToken"] | null;
            /** @description 1 to 100 lines, kept in this order. */
            lines: components["schemas"]["LogLineRequest"][];
        };
        /**
         * @description How important a line is.
         * @enum {string}
         */
        LogLevel: "debug" | "info" | "warn" | "error";
        /** @description A stored line. */
        LogLine: {
            /**
             * Format: date-time
             * @description When it was written.
             */
            at: string;
            /**
             * Format: int32
             * @description The job attempt that wrote it (lines sent with a lease token); absent otherwise.
             */
            attempt?: number | null;
            /** @description Its level. */
            level: components["schemas"]["LogLevel"];
            /** @description Its text. */
            message: string;
            /**
             * Format: int64
             * @description Position among the owner's lines, from 1; the cursor for `after`.
             */
            seq: number;
        };
        /** @description One line as a client sends it. Unknown fields are refused. */
        LogLineRequest: {
            /**
             * Format: date-time
             * @description When the line was written (RFC 3339); default: when the server receives it.
             */
            at?: string | null;
            level?: components["schemas"]["LogLevel"] | null;
            /** @description The text: at most 4096 bytes of UTF-8, no NUL character. */
            message: string;
        };
        /** @description A page of lines, oldest first. */
        LogPage: {
            /** @description The lines with `seq` greater than `after`, oldest first. */
            lines: components["schemas"]["LogLine"][];
            /**
             * Format: int64
             * @description When the page is full: the `after` of the next page (the last line's `seq`).
             */
            next_after?: number | null;
        };
        /**
         * @description May a tick's run start while earlier runs of the same schedule are unfinished?
         * @enum {string}
         */
        Overlap: "allow" | "skip" | "buffer_one";
        /** @description One page of a list, newest first. */
        Page_Job: {
            /** @description The items. */
            items: {
                /**
                 * Format: int32
                 * @description Attempts started so far.
                 */
                attempt: number;
                /**
                 * Format: date-time
                 * @description When the current or last attempt started.
                 */
                attempted_at?: string | null;
                /** @description Attempt history, oldest first; present on single-job reads, absent in lists. */
                attempts?: components["schemas"]["Attempt"][] | null;
                /** @description Retry delay policy. */
                backoff: components["schemas"]["Backoff"];
                /** @description A user asked to cancel while it was running; the worker sees this on its next heartbeat. */
                cancel_requested?: boolean;
                /**
                 * Format: date-time
                 * @description When it was enqueued.
                 */
                created_at: string;
                /** @description The debounce key it was enqueued with, if any. */
                debounce_key?: string | null;
                /**
                 * Format: date-time
                 * @description When it reached a finished state.
                 */
                finished_at?: string | null;
                /** @description The tenant, user or account the job belongs to, if given. */
                group?: string | null;
                /** @description Identity. */
                id: components["schemas"]["JobId"];
                /** @description De-duplication key. */
                idempotency_key?: string | null;
                /** @description The last error reported. */
                last_error?: string | null;
                /**
                 * Format: date-time
                 * @description Lease deadline while running.
                 */
                lease_expires_at?: string | null;
                /**
                 * Format: int32
                 * @description Attempts allowed.
                 */
                max_attempts: number;
                /** @description Job kind, if given. */
                name?: string | null;
                /** @description The payload as the user sent it. */
                payload: unknown;
                /**
                 * Format: int32
                 * @description Higher runs first.
                 */
                priority: number;
                progress?: components["schemas"]["Progress"] | null;
                /** @description Queue it belongs to. */
                queue: string;
                /** @description The result the worker completed it with. */
                result?: unknown;
                /**
                 * Format: date-time
                 * @description When it is (or was) due to run.
                 */
                run_at: string;
                schedule?: components["schemas"]["ScheduledBy"] | null;
                /** @description Current state. */
                state: components["schemas"]["JobState"];
                /** @description Labels. */
                tags?: {
                    [key: string]: string;
                };
                target?: components["schemas"]["Target"] | null;
                /** @description Lease length of one attempt. */
                timeout: components["schemas"]["DurationSpec"];
                waiting_for?: components["schemas"]["WaitingFor"] | null;
                /** @description The worker holding it while running (or that ran it last). */
                worker_id?: string | null;
            }[];
            /** @description Pass as `cursor` to get the next page; absent on the last page. */
            next_cursor?: string | null;
        };
        /** @description The run and step of a parent waiting on this run through `invoke`. */
        ParentView: {
            /**
             * Format: uuid
             * @description The parent run.
             */
            run_id: string;
            /** @description Its `invoke` step. */
            step: string;
        };
        /** @description An error response (`application/problem+json`, RFC 9457). */
        Problem: {
            /** @description Stable machine-readable code, e.g. `invalid_field`, `lease_mismatch`. */
            code: string;
            /** @description Human explanation naming the field or object concerned. */
            detail: string;
            /** @description JSON path of the offending field, when one is to blame. */
            field?: string | null;
            /**
             * Format: int32
             * @description HTTP status.
             */
            status: number;
            /** @description Short summary of the problem type. */
            title: string;
            /** @description A URI naming the problem type (`about:blank` style tags: `urn:offload:problem:{code}`). */
            type: string;
        };
        /** @description Progress a worker reported through heartbeats. */
        Progress: {
            /** @description A short human message. */
            message?: string | null;
            /**
             * Format: int32
             * @description 0 to 100.
             */
            percent: number;
        };
        /** @description A queue as `GET /v1/queues` shows it. */
        QueueInfo: {
            /** @description Jobs per state (every state is present). */
            counts: {
                [key: string]: number;
            };
            /** @description The queue's limits (absent when it has none). */
            limits?: components["schemas"]["QueueLimits"];
            /** @description Queue name. */
            name: string;
            /**
             * Format: int64
             * @description Age of the oldest available job, in milliseconds (absent when none is available).
             */
            oldest_available_age_ms?: number | null;
            /** @description Paused queues hand out no jobs. */
            paused: boolean;
            usage?: components["schemas"]["QueueUsage"] | null;
        };
        /** @description A queue's validated limits. The default limits nothing. */
        QueueLimits: {
            /** @description Most running jobs of the queue. */
            concurrency?: number | null;
            /** @description Claims take groups in turn. */
            fair?: boolean;
            /** @description Most running jobs per group. */
            group_concurrency?: number | null;
            throttle?: components["schemas"]["ThrottleSpec"] | null;
        };
        /**
         * @description A change to a queue's limits: an absent field keeps its value, `null` removes the limit. Unknown fields
         *     are refused.
         */
        QueueLimitsPatch: {
            /** @description Most running jobs of the queue, across every worker and server; `null` removes the limit. */
            concurrency?: number | null;
            /** @description Claims take groups in turn (`null` or absent: unchanged). */
            fair?: boolean | null;
            /** @description Most running jobs per group (jobs without a group are not limited by it); `null` removes the limit. */
            group_concurrency?: number | null;
            throttle?: components["schemas"]["ThrottleSpec"] | null;
        };
        /** @description Answer of `GET /v1/queues`. */
        QueueList: {
            /** @description Every queue that has jobs or was paused. */
            queues: components["schemas"]["QueueInfo"][];
        };
        /** @description How much of its limits a queue uses right now, and which groups wait most. */
        QueueUsage: {
            /**
             * Format: int64
             * @description Groups that have at least one running job.
             */
            groups_running: number;
            /**
             * Format: int64
             * @description Running jobs of the queue.
             */
            running: number;
            /**
             * Format: date-time
             * @description When the queue's throttle lets the next job start (absent when it allows one now or has no throttle).
             */
            throttle_next_at?: string | null;
            /** @description The groups with most available jobs (at most 10), most first. */
            top_groups?: components["schemas"]["GroupUsage"][];
        };
        /** @description A step's final error. */
        RecordedError: {
            /** @description What went wrong. */
            message: string;
            /** @description The error's class. */
            name: string;
            /**
             * @description Must be `false` here: a retryable error ends the call instead.
             * @enum {boolean}
             */
            retryable: false;
        };
        /**
         * @description The one kind of step a worker records within its lease.
         * @enum {string}
         */
        RecordedOp: "run";
        /** @description A `run` step's outcome. */
        RecordedStep: {
            /** @description Its JSON result. */
            data?: unknown;
            error?: components["schemas"]["RecordedError"] | null;
            /** @description The step's id. */
            id: string;
            /** @description Always `run`: only executed steps are recorded within a lease. */
            op: components["schemas"]["RecordedOp"];
        };
        /** @description `POST /v1/runs/{id}/steps`: `run` steps ran within the call's lease. */
        RecordStepsRequest: {
            /**
             * Format: uuid
             * @description The call job the worker holds.
             */
            job_id: string;
            /**
             * Format: uuid
             * @description Its lease token.
             */
            lease_token: string;
            /**
             * @description The steps, each `{"id", "op": "run", "data"}` or `{"id", "op": "run", "error": {"name", "message",
             *     "retryable": false}}`.
             */
            steps: components["schemas"]["RecordedStep"][];
        };
        /** @description `GET /v1/runs`: newest first. */
        RunList: {
            /**
             * Format: uuid
             * @description Pass as `before` for the next page (only on a full page).
             */
            next_cursor?: string | null;
            /** @description The runs. */
            runs: components["schemas"]["RunView"][];
        };
        /** @description A run. */
        RunView: {
            /**
             * Format: date-time
             * @description When the run was created.
             */
            created_at: string;
            /**
             * Format: date-time
             * @description When it ended.
             */
            ended_at?: string | null;
            error?: components["schemas"]["ErrorView"] | null;
            /** @description That event as the code sees it: `{"name", "data", "id", "ts"}`. */
            event: Record<string, never>;
            /**
             * Format: uuid
             * @description The event that started it.
             */
            event_id: string;
            /** @description The function it runs. */
            function_id: string;
            /**
             * Format: uuid
             * @description Its id.
             */
            id: string;
            /** @description The run's output, once succeeded. */
            output?: unknown;
            parent?: components["schemas"]["ParentView"] | null;
            /**
             * Format: date-time
             * @description When its first call started.
             */
            started_at?: string | null;
            /** @description `queued`, `running`, `sleeping`, `waiting`, `succeeded`, `failed` or `cancelled`. */
            state: string;
            /**
             * Format: int32
             * @description Steps recorded so far.
             */
            steps: number;
            /**
             * Format: date-time
             * @description Last change.
             */
            updated_at: string;
            /**
             * Format: date-time
             * @description While sleeping or waiting: when the next call is due at the latest.
             */
            wake_at?: string | null;
        };
        /** @description The schedule tick a job was created for. */
        ScheduledBy: {
            /**
             * Format: date-time
             * @description The tick's fire time (for a run triggered by hand, the moment of the trigger).
             */
            fire_at: string;
            /** @description The schedule's name. */
            name: string;
        };
        /** @description A schedule as the API shows it. */
        ScheduleInfo: {
            /** @description Catch-up policy. */
            catch_up: components["schemas"]["CatchUp"];
            catch_up_window?: components["schemas"]["DurationSpec"] | null;
            /**
             * Format: date-time
             * @description When it was created.
             */
            created_at: string;
            /** @description The expression as written. */
            cron: string;
            /** @description Largest random delay of each tick's job start. */
            jitter: components["schemas"]["DurationSpec"];
            /** @description The job each tick creates. */
            job: components["schemas"]["JobTemplate"];
            /** @description Unique name. */
            name: string;
            /**
             * Format: date-time
             * @description The next fire time not yet handled.
             */
            next_fire_at?: string | null;
            /** @description Upcoming fire times from `next_fire_at` on (single reads only). */
            next_fire_times?: string[];
            /** @description Overlap policy. */
            overlap: components["schemas"]["Overlap"];
            /** @description Paused schedules fire nothing. */
            paused: boolean;
            /** @description Most recent ticks, newest first (single reads only). */
            recent_ticks?: components["schemas"]["Tick"][] | null;
            /** @description `api` or `file`. */
            source: components["schemas"]["ScheduleSource"];
            /** @description IANA time zone. */
            timezone: string;
            /**
             * Format: date-time
             * @description When its definition or pause state last changed.
             */
            updated_at: string;
        };
        /** @description Answer of `GET /v1/schedules`. */
        ScheduleList: {
            /** @description Pass as `cursor` for the next page; absent on the last page. */
            next_cursor?: string | null;
            /** @description Schedules in name order. */
            schedules: components["schemas"]["ScheduleInfo"][];
        };
        /**
         * @description Where a schedule was defined, which decides what a server start does to it.
         * @enum {string}
         */
        ScheduleSource: "api" | "file";
        /**
         * @description A schedule as the API (`PUT /v1/schedules/{name}`) and `[[schedule]]` entries accept it. Unknown fields are
         *     refused.
         */
        ScheduleSpec: {
            catch_up?: components["schemas"]["CatchUp"] | null;
            /** @description With `catch_up = "all"`: how far back late ticks still run (default 24 hours). */
            catch_up_window?: number | string | null;
            /**
             * Format: cron
             * @description When it fires: 5 fields (minute first), 6 (second first) or a nickname such as `@daily`.
             */
            cron: string;
            /** @description Spread each tick's job start by a random delay up to this (default none). */
            jitter?: number | string | null;
            /** @description The job each tick creates. */
            job: components["schemas"]["JobTemplateSpec"];
            /**
             * @description The schedule's unique name; required in `offload.toml`, optional in the API body (where the path names
             *     it; if given, it must match).
             */
            name?: string | null;
            overlap?: components["schemas"]["Overlap"] | null;
            /**
             * @description Create paused, or pause/resume on replace; absent: a new schedule is active, a replaced one keeps its
             *     state.
             */
            paused?: boolean | null;
            /**
             * Format: iana-time-zone
             * @description IANA time zone the expression is read in (default UTC).
             */
            timezone?: string | null;
        };
        /**
         * @description What a singleton does with a new run while one of its key is live.
         * @enum {string}
         */
        SingletonMode: "skip" | "cancel";
        /** @description A function an event triggered but started no run of. */
        SkippedView: {
            /** @description The function. */
            function_id: string;
            /** @description Why: its `rate_limit` was reached, or a run of its `singleton` key was live (`mode: skip`). */
            reason: components["schemas"]["SkipReasonView"];
        };
        /**
         * @description Why an event started no run of a function.
         * @enum {string}
         */
        SkipReasonView: "rate_limit" | "singleton";
        /** @description `POST /v1/jobs/{id}/snooze`: run the job again after `delay`, without using up an attempt. */
        SnoozeRequest: {
            /** @description How long to wait before the job is available again (zero: at once). */
            delay: number | string;
            /** @description The claim's fencing token. */
            lease_token: components["schemas"]["LeaseToken"];
        };
        /** @description `GET /v1/runs/{id}/steps`. */
        StepList: {
            /** @description The run's steps in the order they were first seen. */
            steps: components["schemas"]["StepView"][];
        };
        /** @description A step's recorded result: `{"data": ...}` or `{"error": {"name", "message"}}`. */
        StepResultView: {
            /** @description The step's JSON result. */
            data?: unknown;
            error?: components["schemas"]["ErrorView"] | null;
        };
        /** @description One step of a run, recorded or pending. */
        StepView: {
            /** @description Failed attempts, oldest first. */
            failed_attempts: components["schemas"]["AttemptView"][];
            /** @description The step's id. */
            id: string;
            /** @description `run`, `sleep`, `wait_for_event`, `send_event` or `invoke`. */
            kind: string;
            /**
             * Format: date-time
             * @description When its result was recorded.
             */
            recorded_at?: string | null;
            result?: components["schemas"]["StepResultView"] | null;
            /**
             * Format: date-time
             * @description When the step was first seen.
             */
            started_at: string;
            /**
             * Format: date-time
             * @description A pending sleep, wait or invoke: when it resolves at the latest.
             */
            until?: string | null;
        };
        /**
         * @description Where a push job is delivered: the server sends its payload to `url` and the HTTP status decides the
         *     attempt's outcome. Also the shape of a target in the job view.
         */
        Target: {
            /**
             * Format: http-url
             * @description Receives a signed POST with the job's result once the job succeeded.
             */
            callback_url?: string | null;
            /**
             * Format: http-url
             * @description Receives a signed POST with the job's last error once the job is dead.
             */
            failure_callback_url?: string | null;
            /** @description Extra request headers (e.g. `authorization`); names are kept in lower case. */
            headers?: {
                [key: string]: string;
            };
            /** @description `POST` (default), `PUT` or `PATCH`. */
            method?: string;
            /** @description Request timeout of one delivery (1 s to 1 h); absent: the server's `[push] default_timeout`. */
            timeout?: number | string | null;
            /**
             * Format: http-url
             * @description Absolute `http` or `https` URL the payload is sent to.
             */
            url: string;
        };
        /** @description A throttle as users write it. */
        ThrottleSpec: {
            /** @description Starts allowed at once after a quiet spell (default 1). */
            burst?: number;
            /** @description Starts per period. */
            limit: number;
            /** @description One throttle per group instead of one for the queue. */
            per_group?: boolean;
            /** @description The period (at least 1 ms). */
            period: number | string;
        };
        /** @description One recorded tick (or, for missed ticks, a contiguous run of them). */
        Tick: {
            /**
             * Format: int64
             * @description Ticks this record stands for (more than 1 only for a run of missed ticks).
             */
            count: number;
            /**
             * Format: date-time
             * @description The fire time (the first one, for a run of missed ticks).
             */
            fire_at: string;
            job_id?: components["schemas"]["JobId"] | null;
            /**
             * Format: date-time
             * @description The last fire time of a run of missed ticks.
             */
            last_fire_at?: string | null;
            /** @description True for a run started by hand (`trigger`), outside the cron expression. */
            manual?: boolean;
            /** @description What became of it. */
            outcome: components["schemas"]["TickOutcome"];
            /**
             * Format: date-time
             * @description When it was recorded.
             */
            recorded_at: string;
        };
        /**
         * @description How one tick ended.
         * @enum {string}
         */
        TickOutcome: "fired" | "skipped" | "missed";
        /** @description Answer of `POST /v1/schedules/{name}/trigger`. */
        Triggered: {
            /**
             * Format: date-time
             * @description The instant recorded as the run's fire time.
             */
            fire_at: string;
            /** @description The job created. */
            job_id: components["schemas"]["JobId"];
        };
        /** @description One trigger: exactly one of `event` or `cron`. */
        TriggerSpec: {
            /**
             * Format: cron
             * @description A cron expression that starts a run on every tick (at most one cron trigger). Each run's event is
             *     `offload/cron.tick` with data `{function_id, cron, timezone, scheduled_at}`; after downtime one run
             *     starts, for the most recent tick.
             */
            cron?: string | null;
            /** @description An event name that starts a run. */
            event?: string | null;
            /** @description Field paths (`data.plan`: `data`, `name`, `id` or `ts`, then up to 15 more `.`-separated segments, at most 256 bytes) to a plain value (equality) or an object of operators. */
            if?: {
                [key: string]: (null | boolean | number | string | unknown[]) | {
                    eq?: unknown;
                    exists?: boolean;
                    gt?: number | string;
                    gte?: number | string;
                    in?: unknown[];
                    lt?: number | string;
                    lte?: number | string;
                    ne?: unknown;
                };
            } | null;
            /**
             * Format: iana-time-zone
             * @description IANA time zone of `cron` (default UTC).
             */
            timezone?: string | null;
        };
        /** @description Why a job that is due did not start. */
        WaitingFor: {
            /** @enum {string} */
            reason: "concurrency";
        } | {
            /** @enum {string} */
            reason: "group_concurrency";
        } | {
            /** @enum {string} */
            reason: "throttle";
            /**
             * Format: date-time
             * @description When the throttle allows the next start.
             */
            until: string;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    healthz: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The store answers */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
            /** @description Draining, or the store does not answer */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
        };
    };
    sync_app: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description App name */
                app: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["AppSyncRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The app's functions now match the set */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AppSyncView"];
                };
            };
        };
    };
    list_events: {
        parameters: {
            query?: {
                /** @description Events older than this event id (the `next_cursor` of the previous page). */
                before?: string;
                /** @description Page size (default 50). */
                limit?: number;
                /** @description Only events of this name. */
                name?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description A page of events, newest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EventList"];
                };
            };
        };
    };
    send_events: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["EventsRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Every event was a duplicate: the first events' ids and runs */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EventsSent"];
                };
            };
            /** @description Stored and fanned out */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EventsSent"];
                };
            };
        };
    };
    get_event: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Event id (the server's) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The event */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EventView"];
                };
            };
        };
    };
    list_functions: {
        parameters: {
            query?: {
                /** @description Only functions synced by this app. */
                app?: string;
                /** @description The `next_cursor` of the previous page. */
                cursor?: string;
                /** @description Page size (default 100). */
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description A page of functions by id */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FunctionList"];
                };
            };
        };
    };
    get_function: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Function id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The function */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FunctionView"];
                };
            };
        };
    };
    put_function: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Function id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["FunctionSpec"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The function was replaced */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FunctionView"];
                };
            };
            /** @description The function was registered */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FunctionView"];
                };
            };
        };
    };
    delete_function: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Function id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The function was removed; its runs keep going */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
        };
    };
    list_jobs: {
        parameters: {
            query?: {
                /** @description Continue after this cursor (from a previous page's `next_cursor`). */
                cursor?: string;
                /** @description Only jobs of this group. */
                group?: string;
                /** @description Page size, 1 to 500 (default 50). */
                limit?: number;
                /** @description Only this job name. */
                name?: string;
                /** @description Only this queue. */
                queue?: string;
                /** @description Only this state. */
                state?: components["schemas"]["JobState"];
                /** @description Only jobs carrying this tag, written `key:value`. */
                tag?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description A page of jobs, newest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Page_Job"];
                };
            };
        };
    };
    enqueue: {
        parameters: {
            query?: never;
            header?: {
                /** @description De-duplication key, as an alternative to the body's `idempotency_key` */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["EnqueueRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Idempotent replay: the job created by the same request earlier; or a debounced enqueue: the waiting job with the same debounce key, which took this payload and start, with `"debounced": true` added */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"] & {
                        /** @description Present (true) when a debounced enqueue matched this waiting job */
                        debounced?: boolean;
                    };
                };
            };
            /** @description Stored durably */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
        };
    };
    get_job: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The job's id (a UUID) */
                id: components["schemas"]["JobId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The job with its attempt history */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
        };
    };
    delete_job: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The job's id (a UUID) */
                id: components["schemas"]["JobId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Deleted with its history */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
        };
    };
    abort: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The job's id (a UUID) */
                id: components["schemas"]["JobId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["AbortRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The job's state afterwards (cancelled) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FinishedJob"];
                };
            };
        };
    };
    cancel_job: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The job's id (a UUID) */
                id: components["schemas"]["JobId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The job afterwards (cancelled, or `cancel_requested` when running) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
        };
    };
    complete: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The job's id (a UUID) */
                id: components["schemas"]["JobId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CompleteRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The job's state afterwards */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FinishedJob"];
                };
            };
        };
    };
    fail: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The job's id (a UUID) */
                id: components["schemas"]["JobId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["FailRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The job's state afterwards (retrying, available, dead or cancelled) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FinishedJob"];
                };
            };
        };
    };
    heartbeat: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The job's id (a UUID) */
                id: components["schemas"]["JobId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["HeartbeatRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The extended lease */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["HeartbeatResponse"];
                };
            };
        };
    };
    list_job_logs: {
        parameters: {
            query?: {
                /** @description Only lines with a greater `seq` (the `next_after` of the previous page); default 0: from the oldest kept. */
                after?: number;
                /** @description Page size, 1 to 1000 (default 100). */
                limit?: number;
            };
            header?: never;
            path: {
                /** @description The job's id (a UUID) */
                id: components["schemas"]["JobId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description A page of lines, oldest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["LogPage"];
                };
            };
        };
    };
    append_job_logs: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The job's id (a UUID) */
                id: components["schemas"]["JobId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["LogAppendRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The numbers the lines got */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["LogAppended"];
                };
            };
        };
    };
    retry_job: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The job's id (a UUID) */
                id: components["schemas"]["JobId"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The job, available again */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Job"];
                };
            };
        };
    };
    snooze: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The job's id (a UUID) */
                id: components["schemas"]["JobId"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["SnoozeRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The job's state afterwards (scheduled, available, or cancelled when a cancel was requested) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FinishedJob"];
                };
            };
        };
    };
    enqueue_batch: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["EnqueueBatchRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Every job stored in one transaction */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EnqueueBatchResponse"];
                };
            };
        };
    };
    complete_batch: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CompleteBatchRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description One answer per item, in order */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FinishBatchResponse"];
                };
            };
        };
    };
    fail_batch: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["FailBatchRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description One answer per item, in order */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FinishBatchResponse"];
                };
            };
        };
    };
    list_queues: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Every queue with counts by state */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["QueueList"];
                };
            };
        };
    };
    get_queue: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Queue name: 1 to 128 ASCII letters, digits and `-_.:` */
                queue: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The queue with its limits and usage */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["QueueInfo"];
                };
            };
        };
    };
    set_queue_limits: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Queue name: 1 to 128 ASCII letters, digits and `-_.:` */
                queue: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["QueueLimitsPatch"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The queue afterwards, with its limits and usage */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["QueueInfo"];
                };
            };
        };
    };
    claim: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Queue name: 1 to 128 ASCII letters, digits and `-_.:` */
                queue: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ClaimRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The claimed jobs (possibly none) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ClaimResponse"];
                };
            };
        };
    };
    pause_queue: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Queue name: 1 to 128 ASCII letters, digits and `-_.:` */
                queue: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The queue, paused */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["QueueInfo"];
                };
            };
        };
    };
    resume_queue: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Queue name: 1 to 128 ASCII letters, digits and `-_.:` */
                queue: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The queue, resumed */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["QueueInfo"];
                };
            };
        };
    };
    list_runs: {
        parameters: {
            query?: {
                /** @description Runs older than this run id (the `next_cursor` of the previous page). */
                before?: string;
                /** @description Only runs this event started. */
                event?: string;
                /** @description Only runs of this function. */
                function?: string;
                /** @description Page size (default 50). */
                limit?: number;
                /**
                 * @description Only runs in this state (`queued`, `running`, `sleeping`, `waiting`, `succeeded`, `failed`,
                 *     `cancelled`).
                 */
                state?: "queued" | "running" | "sleeping" | "waiting" | "succeeded" | "failed" | "cancelled";
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description A page of runs, newest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RunList"];
                };
            };
        };
    };
    get_run: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Run id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The run */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RunView"];
                };
            };
        };
    };
    cancel_run: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Run id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The cancelled run */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RunView"];
                };
            };
        };
    };
    list_run_logs: {
        parameters: {
            query?: {
                /** @description Only lines with a greater `seq` (the `next_after` of the previous page); default 0: from the oldest kept. */
                after?: number;
                /** @description Page size, 1 to 1000 (default 100). */
                limit?: number;
            };
            header?: never;
            path: {
                /** @description Run id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description A page of lines, oldest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["LogPage"];
                };
            };
        };
    };
    append_run_logs: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Run id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["LogAppendRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The numbers the lines got */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["LogAppended"];
                };
            };
        };
    };
    retry_run: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Run id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The run, queued again from its failed step */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RunView"];
                };
            };
        };
    };
    list_run_steps: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Run id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The run's steps */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["StepList"];
                };
            };
        };
    };
    record_run_steps: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Run id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["RecordStepsRequest"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The run, with the steps recorded */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RunView"];
                };
            };
        };
    };
    list_schedules: {
        parameters: {
            query?: {
                /** @description Continue after this name (a previous page's `next_cursor`). */
                cursor?: string;
                /** @description Page size, 1 to 500 (default 100). */
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description A page of schedules in name order */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ScheduleList"];
                };
            };
        };
    };
    get_schedule: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Schedule name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The schedule with its next fire times and recent ticks */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ScheduleInfo"];
                };
            };
        };
    };
    put_schedule: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Schedule name */
                name: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ScheduleSpec"];
            };
        };
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The schedule was replaced */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ScheduleInfo"];
                };
            };
            /** @description The schedule was created */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ScheduleInfo"];
                };
            };
        };
    };
    delete_schedule: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Schedule name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The schedule was deleted; its jobs stay */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
        };
    };
    pause_schedule: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Schedule name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The paused schedule */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ScheduleInfo"];
                };
            };
        };
    };
    resume_schedule: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Schedule name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The resumed schedule */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ScheduleInfo"];
                };
            };
        };
    };
    trigger_schedule: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Schedule name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Refused: the `code` says why (see the README's error codes) */
            "4XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The server or its store failed; nothing was written */
            "5XX": {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The job created now */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Triggered"];
                };
            };
        };
    };
}
