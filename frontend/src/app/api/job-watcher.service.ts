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

export const WATCH_TIMING = new InjectionToken<WatchTiming>('WATCH_TIMING', {
  providedIn: 'root',
  factory: () => ({ pollMinMs: 1500, pollMaxMs: 10000, maxStreams: 3 }),
});

/**
 * Live updates of one job: the kernel's SSE stream (`event: job`, data = Job JSON),
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
}
