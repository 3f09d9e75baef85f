import { HttpErrorResponse } from '@angular/common/http';
import { Injectable, InjectionToken, inject, signal } from '@angular/core';
import { Observable, Subscription } from 'rxjs';

import { JobsApi } from './jobs-api.service';
import { Job, isTerminal } from './job.model';

/** The part of the browser's EventSource the watcher uses (lets tests hand in a fake). */
export interface EventSourceLike {
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void;
  close(): void;
}

export type EventSourceFactory = (url: string) => EventSourceLike | null;

export const EVENT_SOURCE_FACTORY = new InjectionToken<EventSourceFactory>('EVENT_SOURCE_FACTORY', {
  providedIn: 'root',
  factory: () => (url: string) =>
    typeof EventSource === 'undefined' ? null : (new EventSource(url) as EventSourceLike),
});

export interface WatchTiming {
  /** First poll interval, and the interval right after a change. */
  pollMinMs: number;
  /** Interval when nothing changes for a while (queued jobs can wait for hours). */
  pollMaxMs: number;
  /**
   * Open streams at most. Browsers allow ~6 HTTP/1.1 connections per host and each
   * EventSource holds one, so the rest of the jobs are polled.
   */
  maxStreams: number;
}

/** Jobs one shared stream follows at most (the kernel's MAX_FOLLOWED). */
export const MAX_FOLLOWED = 100;

/** What a shared stream tells: a job changed, a job is gone, or the stream broke. */
export type LiveEvent = { kind: 'job'; job: Job } | { kind: 'gone'; id: string } | { kind: 'lost' };

export const WATCH_TIMING = new InjectionToken<WatchTiming>('WATCH_TIMING', {
  providedIn: 'root',
  factory: () => ({ pollMinMs: 1500, pollMaxMs: 10000, maxStreams: 3 }),
});

/**
 * Live updates of jobs. `watch`: one job, on the kernel's SSE stream (`event: job`, data = Job JSON),
 * falling back to polling GET /jobs/{id} when streams are unavailable, used up, or fail.
 */
@Injectable({ providedIn: 'root' })
export class JobWatcher {
  private readonly api = inject(JobsApi);
  private readonly createSource = inject(EVENT_SOURCE_FACTORY);
  private readonly timing = inject(WATCH_TIMING);
  private readonly streamCount = signal(0);
  private readonly pollCount = signal(0);

  /** Jobs followed over SSE right now. */
  readonly streams = this.streamCount.asReadonly();
  /** Jobs followed by polling right now. */
  readonly polled = this.pollCount.asReadonly();

  /**
   * Emits the job each time it changes; completes after a terminal status; errors only
   * when the job is gone (404). Unsubscribe to stop following.
   */
  watch(id: string): Observable<Job> {
    return new Observable<Job>((subscriber) => {
      let source: EventSourceLike | null = null;
      let pollTimer: ReturnType<typeof setTimeout> | undefined;
      let request: Subscription | undefined;
      let polling = false;
      let interval = this.timing.pollMinMs;
      let lastSeen = '';
      let done = false;

      const closeSource = (): void => {
        if (source) {
          source.close();
          source = null;
          this.streamCount.update((n) => n - 1);
        }
      };
      const stop = (): void => {
        done = true;
        closeSource();
        clearTimeout(pollTimer);
        request?.unsubscribe();
        if (polling) {
          polling = false;
          this.pollCount.update((n) => n - 1);
        }
      };
      const emit = (job: Job): boolean => {
        const key = `${job.status}|${job.progress}|${job.updated_at}`;
        const changed = key !== lastSeen;
        lastSeen = key;
        subscriber.next(job);
        if (isTerminal(job.status)) {
          stop();
          subscriber.complete();
        }
        return changed;
      };
      const schedulePoll = (): void => {
        if (!done) {
          pollTimer = setTimeout(poll, interval);
        }
      };
      const poll = (): void => {
        request = this.api.get(id).subscribe({
          next: (job) => {
            const changed = emit(job);
            interval = changed
              ? this.timing.pollMinMs
              : Math.min(Math.round(interval * 1.5), this.timing.pollMaxMs);
            schedulePoll();
          },
          error: (error: unknown) => {
            if (error instanceof HttpErrorResponse && error.status === 404) {
              stop();
              subscriber.error(error);
              return;
            }
            interval = this.timing.pollMaxMs; // API trouble: knock gently until it is back
            schedulePoll();
          },
        });
      };
      const startPolling = (): void => {
        closeSource();
        if (!polling && !done) {
          polling = true;
          this.pollCount.update((n) => n + 1);
          poll(); // catch up at once on what the stream may have missed
        }
      };

      if (this.streamCount() < this.timing.maxStreams) {
        source = this.createSource(this.api.eventsUrl(id));
      }
      if (source) {
        this.streamCount.update((n) => n + 1);
        source.addEventListener('job', (event) => {
          try {
            emit(JSON.parse(event.data) as Job);
          } catch {
            startPolling(); // a stream we cannot read is a failed stream
          }
        });
        // EventSource would reconnect by itself forever; a poll is cheaper and also
        // notices when the stream ended because the server went away.
        source.addEventListener('error', () => {
          if (!done) {
            startPolling();
          }
        });
      } else {
        startPolling();
      }
      return stop;
    });
  }

  /**
   * Live updates of several jobs (at most MAX_FOLLOWED) on one connection: a browser has
   * about six per host for all its tabs, so a page holds one whatever it shows. Emits
   * each change and each job that is gone (deleted, or not the user's); completes once
   * every job has finished or gone. When the stream breaks first (or cannot be opened),
   * emits `lost` and completes: the caller polls, then follows again.
   */
  followAll(ids: readonly string[]): Observable<LiveEvent> {
    return new Observable<LiveEvent>((subscriber) => {
      const open = new Set(ids);
      const source = open.size ? this.createSource(this.api.sharedEventsUrl([...open])) : null;
      let closed = false;
      const close = (): void => {
        if (source && !closed) {
          source.close();
          this.streamCount.update((n) => n - 1);
        }
        closed = true;
      };
      const lost = (): void => {
        if (!closed) {
          close();
          subscriber.next({ kind: 'lost' });
          subscriber.complete();
        }
      };
      const settle = (id: string): void => {
        open.delete(id);
        if (open.size === 0) {
          close();
          subscriber.complete();
        }
      };
      if (!source) {
        closed = true;
        subscriber.next({ kind: 'lost' });
        subscriber.complete();
        return close;
      }
      this.streamCount.update((n) => n + 1);
      source.addEventListener('job', (event) => {
        let job: Job;
        try {
          job = JSON.parse(event.data) as Job;
        } catch {
          lost(); // a stream we cannot read is a failed stream
          return;
        }
        if (!closed) {
          subscriber.next({ kind: 'job', job });
          if (isTerminal(job.status)) {
            settle(job.id);
          }
        }
      });
      source.addEventListener('gone', (event) => {
        let id: string;
        try {
          id = (JSON.parse(event.data) as { id: string }).id;
        } catch {
          lost();
          return;
        }
        if (!closed) {
          subscriber.next({ kind: 'gone', id });
          settle(id);
        }
      });
      // A break, a refusal (404, 429) or the kernel's `event: error`: EventSource would
      // reconnect by itself forever; the caller polls instead, and follows again later.
      source.addEventListener('error', lost);
      return close;
    });
  }
}
