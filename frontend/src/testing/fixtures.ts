import { Job } from '../app/api/job.model';
import { EventSourceLike } from '../app/api/job-watcher.service';

let counter = 0;

/** A job as the kernel would send it; override what the test cares about. */
export function makeJob(overrides: Partial<Job> = {}): Job {
  counter += 1;
  const id = overrides.id ?? counter.toString(16).padStart(24, 'a');
  return {
    id,
    name: 'simulate',
    user_id: 'alice',
    description: null,
    estimated_time: 10,
    params: null,
    executor: 'standard',
    status: 'queued',
    progress: 0,
    result: null,
    error: null,
    attempts: 0,
    worker_id: null,
    created_at: '2026-11-01T10:00:00Z',
    updated_at: '2026-11-01T10:00:00Z',
    started_at: null,
    finished_at: null,
    run_at: null,
    rerun_of: null,
    callback_url: null,
    ...overrides,
  };
}

/** Stands in for the browser's EventSource; the test pushes events by hand. */
export class FakeEventSource implements EventSourceLike {
  static instances: FakeEventSource[] = [];
  closed = false;
  private readonly listeners = new Map<string, ((event: MessageEvent<string>) => void)[]>();

  constructor(readonly url: string) {
    FakeEventSource.instances.push(this);
  }

  static reset(): void {
    FakeEventSource.instances = [];
  }

  static last(): FakeEventSource {
    const source = FakeEventSource.instances.at(-1);
    if (!source) {
      throw new Error('no EventSource was opened');
    }
    return source;
  }

  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
  }

  /** Deliver `event: job` with this job as data. */
  sendJob(job: Job): void {
    this.dispatch('job', JSON.stringify(job));
  }

  /** Deliver `event: gone` for this job id (a shared stream). */
  sendGone(id: string): void {
    this.dispatch('gone', JSON.stringify({ id, detail: `job ${id} was deleted` }));
  }

  /** What the browser does when the stream breaks. */
  fail(): void {
    this.dispatch('error', '');
  }

  private dispatch(type: string, data: string): void {
    for (const listener of this.listeners.get(type) ?? []) {
      listener(new MessageEvent(type, { data }));
    }
  }
}
