/**
 * GET /api/v1/stats (admins only): the system at a glance. Keep the names identical
 * to the wire so a grep finds both sides. Any figure not known yet is 0 or an empty list.
 */

/** Jobs that reached a final status during one minute (`minute` is its start, ISO UTC). */
export interface MinuteCounts {
  minute: string;
  succeeded: number;
  failed: number;
  cancelled: number;
}

export type QueueKind = 'standard' | 'rq' | 'dead-letter' | 'reports';

/** Messages waiting in one queue. */
export interface QueueDepth {
  name: string;
  kind: QueueKind | string;
  depth: number;
}

/** Run time and queue wait percentiles of one task's recent runs, in milliseconds. */
export interface TaskTimes {
  task: string;
  runs: number;
  run_p50_ms: number;
  run_p95_ms: number;
  wait_p50_ms: number;
  wait_p95_ms: number;
}

export interface WorkerCounts {
  online: number;
  busy: number;
  idle: number;
}

/** A recently failed job, newest first. */
export interface RecentFailure {
  id: string;
  name: string;
  user_id: string;
  error: string | null;
  finished_at: string | null;
}

export interface Stats {
  generated_at: string;
  /** The last hour, oldest minute first (60 entries, zeros included). */
  minutes: MinuteCounts[];
  queues: QueueDepth[];
  tasks: TaskTimes[];
  workers: WorkerCounts;
  recent_failures: RecentFailure[];
}
