"""Typed settings, read once from the environment and an optional ``.env`` file.

Nothing else in the project reads ``os.environ``: import :func:`get_settings`.
Every field has a default that works on one machine; ``.env.example`` lists them all.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_CONFIG = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")


class MongoSettings(BaseSettings):
    """Where the data service keeps the job documents."""

    model_config = _CONFIG

    mongodb_url: str = Field("mongodb://127.0.0.1:27018", description="MongoDB connection URL.")
    database_name: str = Field("taskbroker", description="Database holding the jobs.")
    collection_name: str = Field("jobs", description="Collection holding the jobs.")
    mongodb_timeout_ms: int = Field(5000, ge=100, description="Server selection timeout.")


class RedisSettings(BaseSettings):
    """The Redis that holds the RQ queues (and the stream queue when QUEUE_BACKEND=redis)."""

    model_config = _CONFIG

    redis_url: str = Field("redis://127.0.0.1:6380/0", description="Redis connection URL.")


class QueueSettings(BaseSettings):
    """The STANDARD queue between the kernel and the dispatcher."""

    model_config = _CONFIG

    queue_backend: Literal["redis", "sqs"] = Field(
        "redis", description="redis: a Redis Stream; sqs: AWS SQS or an SQS-compatible endpoint."
    )
    standard_queue_name: str = Field("standard", description="Name of the STANDARD queue.")
    dead_letter_queue_name: str = Field(
        "", description="Dead-letter queue name; empty means '<STANDARD_QUEUE_NAME>-dlq'."
    )
    queue_visibility_timeout: int = Field(
        60, ge=1, le=43200, description="Seconds a received message stays hidden before redelivery."
    )
    queue_max_receives: int = Field(
        5, ge=1, le=1000, description="Deliveries of one message before it is dead-lettered."
    )
    queue_wait_seconds: int = Field(
        5, ge=0, le=20, description="Long-poll wait of one receive call."
    )
    queue_create: bool = Field(True, description="Create the queues on first use.")
    sqs_endpoint_url: str = Field("", description="SQS endpoint; empty means AWS itself.")
    aws_access_key_id: str = Field("local", description="AWS access key id.")
    aws_secret_access_key: str = Field("local", description="AWS secret access key.")
    aws_default_region: str = Field("us-east-1", description="AWS region.")

    @property
    def dead_letter_name(self) -> str:
        return self.dead_letter_queue_name or f"{self.standard_queue_name}-dlq"


class StoreSettings(BaseSettings):
    """The data service process."""

    model_config = _CONFIG

    store_host: str = Field("127.0.0.1", description="Address the data service binds.")
    store_port: int = Field(8001, ge=1, le=65535, description="Port the data service binds.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted by the HTTP services."
    )
    job_retention_days: float = Field(
        30.0, ge=0, description="Days a finished job is kept (counted from when it finished) "
        "before the data service deletes it; fractions allowed; 0 keeps jobs forever. "
        "Unfinished jobs are never deleted."
    )
    retention_sweep_interval: float = Field(
        3600.0, gt=0, description="Seconds between two sweeps for finished jobs past "
        "JOB_RETENTION_DAYS (each data service replica sweeps, at jittered times)."
    )


class ApiSettings(BaseSettings):
    """The kernel API process and its client of the data service."""

    model_config = _CONFIG

    api_host: str = Field("127.0.0.1", description="Address the kernel API binds.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port the kernel API binds.")
    data_service_url: str = Field(
        "http://127.0.0.1:8001", description="Base URL of the data service."
    )
    data_service_timeout: float = Field(
        5.0, gt=0, description="Seconds one request to the data service may take."
    )
    data_service_deadline: float = Field(
        10.0, gt=0, description="Seconds of retrying a data service that does not answer."
    )
    data_service_token: str = Field(
        "", description="Shared secret every caller of the data service sends (and the data "
        "service requires on every route but its probes). Empty: the local run generates one "
        "under DATA_DIR; any other data service refuses to start without it."
    )
    frontend_dist: str = Field(
        "frontend/dist/frontend/browser",
        description="Built web app served at / by the kernel (skipped if absent).",
    )
    cors_origins: str = Field(
        "", description="Comma-separated origins allowed by CORS; empty: none (the web app is "
        "served by the kernel itself, same origin)."
    )
    trusted_proxies: str = Field(
        "", description="Comma-separated addresses or networks (CIDR) of the reverse proxies "
        "in front of the kernel, and nothing else: only from them is X-Forwarded-For believed "
        "(the sign-in limit counts per client address); empty: none, the peer is the client."
    )
    sse_poll_interval: float = Field(
        0.5, gt=0, description="Seconds between two looks at the jobs followed by live streams "
        "(one data service request per look for all of a process's streams)."
    )
    sse_max_streams: int = Field(
        1000, ge=1, description="Live event streams one kernel process serves at once; "
        "beyond it a new stream is answered 429."
    )
    sse_max_streams_per_user: int = Field(
        20, ge=1, description="Live event streams one user may hold open on one kernel process."
    )
    max_backlog: int = Field(
        10000, ge=1, description="Jobs waiting (STANDARD queue plus the executor's RQ queue) "
        "above which a submit is answered 429 with Retry-After."
    )
    max_schedule_ahead: float = Field(
        30 * 24 * 3600.0, gt=0, description="Longest a job may be scheduled ahead (run_at or "
        "delay), in seconds; a submit further ahead is answered 400."
    )
    submit_batch_max: int = Field(
        100, ge=1, le=1000, description="Most concurrent submits recorded with one data service "
        "call and queued with one send (group commit)."
    )
    idempotency_ttl: int = Field(
        86400, ge=1, description="Seconds an Idempotency-Key of a submit is kept (per user, in "
        "Redis): the same key again within it answers the first job's id and creates nothing."
    )


class AuthSettings(BaseSettings):
    """Who may use the kernel's /api/v1: sessions, API tokens, OIDC, and the limits per user."""

    model_config = _CONFIG

    auth_secret: str = Field(
        "", description="Key that signs session cookies and API tokens (HS256). Empty: the "
        "local run generates one under DATA_DIR; a kernel without it refuses to start."
    )
    auth_session_ttl: int = Field(
        43200, ge=60, description="Seconds a web app sign-in lasts."
    )
    auth_cookie_secure: bool = Field(
        False, description="Send the session cookie over HTTPS only (set true behind TLS)."
    )
    auth_oidc_issuer: str = Field(
        "", description="OIDC issuer URL whose JWTs are accepted as bearer tokens (its JWKS "
        "is fetched from its discovery document and cached); empty: OIDC off."
    )
    auth_oidc_audience: str = Field(
        "", description="Audience an OIDC JWT must name (required when the issuer is set)."
    )
    auth_oidc_user_claim: str = Field(
        "sub", description="Claim of an OIDC JWT that names the user (who is then "
        "'oidc:<claim>', never a local user; 'email' also needs email_verified true)."
    )
    auth_oidc_api_tokens: bool = Field(
        False, description="Let a caller signed in through OIDC create API tokens (for its "
        "'oidc:<claim>' user, role user); false: only local users can."
    )
    auth_api_token_ttl: int = Field(
        90 * 24 * 3600, ge=1, description="Seconds an API token lasts from its creation."
    )
    auth_max_api_tokens_per_user: int = Field(
        50, ge=1, description="API tokens (unrevoked, unexpired) one user may hold; beyond it "
        "creating one is answered 409."
    )
    admin_password: str = Field(
        "", description="Password of the admin user the local run creates at its first start; "
        "empty: a random one, printed once."
    )
    submit_rate_limit: str = Field(
        "50/second", description="Submits one user may make, as N/second, N/minute or N/hour "
        "(every kernel replica shares the count in Redis); admins are exempt; empty: no limit."
    )
    login_rate_limit: str = Field(
        "10/minute", description="Sign-in attempts from one client address, as N/second, "
        "N/minute or N/hour (every kernel replica shares the count in Redis); empty: no limit."
    )
    login_failures_per_account: int = Field(
        10, ge=0, description="Failed sign-ins for one user name, from any address, before "
        "its sign-ins are refused (429) for 30 s, doubled at each further failure up to "
        "LOGIN_LOCKOUT_MAX; a successful sign-in clears the count; 0: no limit per name."
    )
    login_lockout_max: int = Field(
        900, ge=1, description="Longest wait (seconds) after failed sign-ins for one user "
        "name; its failures are forgotten after twice this long without one."
    )
    max_unfinished_jobs_per_user: int = Field(
        10000, ge=1, description="Unfinished jobs one user may have; beyond it a submit is "
        "answered 429. Admins are exempt."
    )


class WorkerSettings(BaseSettings):
    """The dispatcher and the RQ workers."""

    model_config = _CONFIG

    executors: str = Field(
        "standard,priority", description="Comma-separated executor names (one RQ queue each)."
    )
    worker_count: int = Field(2, ge=1, le=256, description="Workers started by one executor.")
    task_modules: str = Field(
        "", description="Comma-separated modules of user tasks imported at start."
    )
    max_attempts: int = Field(3, ge=1, le=100, description="Attempts of a job before it fails.")
    retry_backoff_base: float = Field(1.0, ge=0, description="First retry delay in seconds.")
    retry_backoff_max: float = Field(60.0, ge=0, description="Longest retry delay in seconds.")
    job_timeout_default: int = Field(
        300, ge=1, description="Timeout in seconds of a job without estimated_time."
    )
    job_timeout_factor: float = Field(
        3.0, ge=1, description="Timeout = max(minimum, factor * estimated_time)."
    )
    job_timeout_min: int = Field(30, ge=1, description="Shortest derived timeout in seconds.")
    shutdown_grace: float = Field(
        30.0, ge=0, description="Seconds running jobs get to finish on SIGTERM."
    )
    dispatch_batch: int = Field(
        100, ge=1, le=1000, description="Most messages one receive call takes (SQS: at most 10)."
    )
    worker_heartbeat: float = Field(
        5.0, gt=0, le=300,
        description="Seconds between heartbeats of a busy worker; its job counts as abandoned "
        "(worker died) after 4 missed beats. Also the worker executor's sweep interval.",
    )
    report_interval: float = Field(
        0.5, ge=0, description="Fewest seconds between two progress reports (and between two "
        "cancel checks) of one running job.",
    )
    max_job_timeout: int = Field(
        21600, ge=1, description="Longest timeout of any job in seconds; estimated_time may "
        "not exceed it."
    )
    max_result_bytes: int = Field(
        262144, ge=1024, le=16 * 1024 * 1024, description="Largest result a task may return "
        "(JSON bytes); a larger one fails the job permanently."
    )
    rq_result_ttl: int = Field(
        60, ge=0, description="Seconds RQ keeps a finished job, for rq-dashboard's finished "
        "list only (the data service keeps the job and its result). Short on purpose: each "
        "costs about 7 KB of Redis while kept, which at 300 jobs/s is 126 MB per minute "
        "kept, and a full Redis (noeviction) refuses every write."
    )
    rq_failure_ttl: int = Field(
        86400, ge=0, description="Seconds RQ keeps a failed (or cancelled) job with its "
        "traceback, for rq-dashboard's failed list; 7 KB of Redis or more each (the traceback)."
    )
    done_ttl: int = Field(
        86400, ge=60, description="Seconds a finished job's marker stays in Redis, so a "
        "duplicated or late message never runs it again."
    )
    recorder_batch: int = Field(
        500, ge=1, le=5000, description="Most reports the recorder applies with one data "
        "service call."
    )
    batch_linger: float = Field(
        0.005, ge=0, le=1, description="Seconds the dispatcher and the recorder wait after "
        "a batch smaller than their most before reading again, so that under load one read "
        "(and one data service call) takes several messages; an idle queue is read at once."
    )
    reconcile_interval: float = Field(
        15.0, ge=0, description="Seconds between two reconciliations of unfinished jobs that "
        "neither the queue nor RQ holds; 0 disables them."
    )
    reconcile_after: float = Field(
        60.0, ge=1, description="Seconds a job must sit unchanged in created, queued, retrying "
        "or running before the reconciler may send it again."
    )
    dispatcher_exit_after_receive: bool = Field(
        False, description="Fault injection for tests: the dispatcher exits right after "
        "receiving a batch, before enqueueing or acking it.",
    )

    @property
    def executor_names(self) -> list[str]:
        return [name.strip() for name in self.executors.split(",") if name.strip()]

    @property
    def task_module_names(self) -> list[str]:
        return [name.strip() for name in self.task_modules.split(",") if name.strip()]


class WebhookSettings(BaseSettings):
    """Webhooks: the finished job POSTed to the submit's callback_url, signed."""

    model_config = _CONFIG

    webhook_allowed_hosts: str = Field(
        "", description="Comma-separated hosts a callback_url may name, matched exactly: host "
        "(its scheme's default port only, 80 or 443) or host:port; empty: webhooks are off and "
        "a submit with callback_url is answered 422."
    )
    webhook_secret: str = Field(
        "", description="Master key of the webhook signatures (X-Taskbroker-Signature): each "
        "user's signing secret is derived from it and their key id, so the kernel (which shows "
        "it) and the dispatcher (which signs) need the same one; changing it changes every "
        "user's secret. Empty: the local run generates one under DATA_DIR; a dispatcher without "
        "it delivers no webhook (they wait in Redis) and says so at start."
    )
    webhook_timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds one webhook delivery may take (connect, send, "
        "answer); redirects are never followed."
    )
    webhook_max_attempts: int = Field(
        8, ge=1, le=100, description="Deliveries of one webhook before it is given up (logged); "
        "a 2xx answer ends it."
    )
    webhook_backoff_base: float = Field(
        10.0, gt=0, description="Seconds before the first retry of a webhook; each retry waits "
        "twice as long as the one before, at most WEBHOOK_BACKOFF_MAX."
    )
    webhook_backoff_max: float = Field(
        3600.0, gt=0, description="Longest wait in seconds between two deliveries of a webhook."
    )

    @property
    def allowed_hosts(self) -> list[str]:
        return [host.strip().lower() for host in self.webhook_allowed_hosts.split(",")
                if host.strip()]


class ObservabilitySettings(BaseSettings):
    """Metrics, structured logs and tracing of every process."""

    model_config = _CONFIG

    log_format: Literal["text", "json"] = Field(
        "text", description="text: one readable line per record; json: one JSON object per "
        "line (timestamp, level, logger, message, role, job_id and trace_id when about a job)."
    )
    metrics_enabled: bool = Field(
        True, description="Count and serve Prometheus metrics in every process; false: no "
        "/metrics and no counting at all (benchmarks/metrics_cost.py measures the difference)."
    )
    metrics_token: str = Field(
        "", description="Bearer token a scraper must send to every /metrics endpoint; empty: "
        "/metrics is open (keep it reachable from the monitoring network only)."
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the worker executor's and the dispatcher's metrics "
        "endpoints bind (0.0.0.0 in containers, so Prometheus can scrape them)."
    )
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="Port of the worker executor's /metrics (its worker "
        "processes' counters); 0: off."
    )
    dispatcher_metrics_port: int = Field(
        9465, ge=0, le=65535, description="Port of the dispatcher's /metrics (queue depths, "
        "dead letters, report stream); 0: off."
    )
    otel_exporter_otlp_endpoint: str = Field(
        "", description="OTLP/HTTP endpoint (e.g. http://otel-collector:4318) every process "
        "sends its trace spans to; empty: tracing off."
    )
    otel_service_name: str = Field(
        "taskbroker", description="Service name of the traces; each process appends its role "
        "(taskbroker-api, taskbroker-store, taskbroker-dispatcher, taskbroker-workers)."
    )


class LocalSettings(BaseSettings):
    """The one-command local run."""

    model_config = _CONFIG

    data_dir: Path = Field(Path(".data"), description="Folder for local databases and logs.")
    dashboard_port: int = Field(9181, ge=1, le=65535, description="rq-dashboard port.")
    dashboard_username: str = Field(
        "admin", description="User name rq-dashboard asks for (HTTP basic auth)."
    )
    dashboard_password: str = Field(
        "", description="Password rq-dashboard asks for; empty: the local run generates one "
        "under DATA_DIR (printed at start); elsewhere rq-dashboard refuses to start."
    )
    redis_maxmemory: str = Field(
        "1gb", description="maxmemory of the Redis the local run starts (policy noeviction: "
        "Redis refuses writes when full rather than drop queued work)."
    )
    log_level: str = Field("INFO", description="Log level of every process.")
    api_url: str = Field(
        "http://127.0.0.1:8000", description="Kernel API the command-line client talks to."
    )
    taskbroker_token: str = Field(
        "", description="API token the command-line client sends (overrides the one "
        "`taskbroker login` kept)."
    )


class Settings:
    """All settings, one typed object per concern."""

    def __init__(self) -> None:
        self.mongo = MongoSettings()
        self.redis = RedisSettings()
        self.queue = QueueSettings()
        self.store = StoreSettings()
        self.api = ApiSettings()
        self.auth = AuthSettings()
        self.worker = WorkerSettings()
        self.local = LocalSettings()
        self.webhooks = WebhookSettings()
        self.observability = ObservabilitySettings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return Settings()


SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    MongoSettings,
    RedisSettings,
    QueueSettings,
    StoreSettings,
    ApiSettings,
    AuthSettings,
    WorkerSettings,
    LocalSettings,
    WebhookSettings,
    ObservabilitySettings,
)


def setting_names() -> list[str]:
    """Every environment variable the project reads (upper case)."""
    return [name.upper() for cls in SETTINGS_CLASSES for name in cls.model_fields]
