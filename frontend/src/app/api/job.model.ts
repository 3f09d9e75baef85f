/**
 * The kernel's wire contract, mirrored from backend/jobs.py (msgspec Structs).
 * Keep the names identical so a grep finds both sides.
 */

export const JOB_STATUSES = [
  'created',
  'scheduled',
  'queued',
  'running',
  'retrying',
  'succeeded',
  'failed',
  'cancelled',
] as const;

export type JobStatus = (typeof JOB_STATUSES)[number];

export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set<JobStatus>([
  'succeeded',
  'failed',
  'cancelled',
]);

/** Whether a job in this status will never change again. */
export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

export type JsonValue =
  string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type JsonObject = Record<string, JsonValue>;

/** A job as every service sees it. Progress is percent, 0 to 100; timestamps are ISO UTC. */
export interface Job {
  id: string;
  name: string;
  user_id: string;
  description: string | null;
  estimated_time: number | null;
  params: JsonObject | null;
  executor: string;
  status: JobStatus;
  progress: number;
  result: JsonValue;
  error: string | null;
  attempts: number;
  worker_id: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** When a `scheduled` job is due (ISO UTC); null for a job that runs at once. */
  run_at: string | null;
  /** The job this one re-runs, or null. */
  rerun_of: string | null;
  /** The webhook called when the job finishes, or null. */
  callback_url: string | null;
}

/**
 * A job as GET /api/v1/jobs lists it (backend/jobs.py JobSummary): no params, result or
 * callback_url, and the error cut short. The detail page fetches the whole job.
 */
export type JobSummary = Omit<Job, 'params' | 'result' | 'callback_url'>;

/** One page of jobs, newest first. */
export interface JobPage {
  items: JobSummary[];
  total: number;
  limit: number;
  offset: number | null;
  next_cursor: string | null;
}

/** Body of POST /api/v1/job_executor/async. The owner is the signed-in user. */
export interface JobExecutionRequest {
  job_name: string;
  estimated_time: number;
  description?: string | null;
  params?: JsonObject | null;
  /** When to run it: ISO 8601 with a zone (a time in the past means now). */
  run_at?: string | null;
  /** Called (POST) when the job finishes; its host must be in WEBHOOK_ALLOWED_HOSTS. */
  callback_url?: string | null;
}

export interface SubmitResponse {
  status: number;
  job_id: string;
}

export interface TaskInfo {
  name: string;
  description: string;
}

export interface ExecutorInfo {
  name: string;
  default: boolean;
}

export interface Deleted {
  message: string;
}

/**
 * Query of GET /api/v1/jobs: the caller's own jobs, unless an admin asks for one
 * user's (`user_id`) or every user's (`all`). A non-admin naming another user gets 403.
 */
export interface JobQuery {
  user_id?: string | null;
  all?: boolean;
  status?: JobStatus | null;
  limit?: number;
  offset?: number;
  cursor?: string | null;
}
