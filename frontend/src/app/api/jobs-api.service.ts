import { HttpClient, HttpParams } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

import { API_BASE } from './api-base';
import {
  Deleted,
  ExecutorInfo,
  Job,
  JobExecutionRequest,
  JobPage,
  JobQuery,
  SubmitResponse,
  TaskInfo,
} from './job.model';

/** Typed calls to the kernel's HTTP API; one method per endpoint. */
@Injectable({ providedIn: 'root' })
export class JobsApi {
  private readonly http = inject(HttpClient);
  private readonly base = inject(API_BASE);

  tasks(): Observable<TaskInfo[]> {
    return this.http.get<TaskInfo[]>(`${this.base}/tasks`);
  }

  executors(): Observable<ExecutorInfo[]> {
    return this.http.get<ExecutorInfo[]>(`${this.base}/executors`);
  }

  submit(executor: string, request: JobExecutionRequest): Observable<SubmitResponse> {
    const params = new HttpParams().set('executor', executor);
    return this.http.post<SubmitResponse>(`${this.base}/job_executor/async`, request, { params });
  }

  list(query: JobQuery): Observable<JobPage> {
    let params = new HttpParams();
    if (query.all) {
      params = params.set('all', 'true');
    } else if (query.user_id) {
      params = params.set('user_id', query.user_id);
    }
    if (query.status) {
      params = params.set('status', query.status);
    }
    if (query.limit !== undefined) {
      params = params.set('limit', query.limit);
    }
    if (query.cursor) {
      params = params.set('cursor', query.cursor);
    } else if (query.offset !== undefined) {
      params = params.set('offset', query.offset);
    }
    return this.http.get<JobPage>(`${this.base}/jobs`, { params });
  }

  get(id: string): Observable<Job> {
    return this.http.get<Job>(`${this.base}/jobs/${encodeURIComponent(id)}`);
  }

  cancel(id: string): Observable<Job> {
    return this.http.post<Job>(`${this.base}/jobs/${encodeURIComponent(id)}/cancel`, null);
  }

  /** A new job with the same task, executor, params and description; 409 while unfinished. */
  rerun(id: string): Observable<SubmitResponse> {
    return this.http.post<SubmitResponse>(
      `${this.base}/jobs/${encodeURIComponent(id)}/rerun`,
      null,
    );
  }

  delete(id: string): Observable<Deleted> {
    return this.http.delete<Deleted>(`${this.base}/jobs/${encodeURIComponent(id)}`);
  }

  /** URL of the job's server-sent event stream (`event: job`, data = Job JSON). */
  eventsUrl(id: string): string {
    return `${this.base}/jobs/${encodeURIComponent(id)}/events`;
  }

  /**
   * URL of one stream for several jobs (at most MAX_FOLLOWED): `event: job` (data = Job
   * JSON) and `event: gone` (data = `{id, detail}`).
   */
  sharedEventsUrl(ids: readonly string[]): string {
    const params = ids.reduce((p, id) => p.append('job', id), new HttpParams());
    return `${this.base}/events?${params.toString()}`;
  }
}
