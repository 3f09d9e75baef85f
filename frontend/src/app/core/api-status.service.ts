import { Injectable, OnDestroy, inject, signal } from '@angular/core';
import { Observable, Subject } from 'rxjs';

import { ApiError } from '../api/api-error';
import { AuthApi } from '../api/auth-api.service';

/** How often to knock while the API is down. */
export const API_RETRY_MS = 5000;

/**
 * Whether the kernel answers. Every request reports here (see apiStatusInterceptor);
 * while it is down a cheap request is retried so the banner clears by itself, and
 * pages reload their data on {@link ApiStatus.recovered}.
 */
@Injectable({ providedIn: 'root' })
export class ApiStatus implements OnDestroy {
  private readonly api = inject(AuthApi);
  private readonly downSignal = signal<ApiError | null>(null);
  private readonly recoveredSubject = new Subject<void>();
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  /** The last "unreachable" error, or null while the API answers. */
  readonly down = this.downSignal.asReadonly();
  /** Emits once each time the API comes back after being down. */
  readonly recovered: Observable<void> = this.recoveredSubject.asObservable();

  markDown(error: ApiError): void {
    this.downSignal.set(error);
    this.scheduleRetry();
  }

  markUp(): void {
    if (this.downSignal() === null) {
      return;
    }
    this.downSignal.set(null);
    this.clearRetry();
    this.recoveredSubject.next();
  }

  /** Knock now (the banner's "Retry" button). */
  retryNow(): void {
    this.clearRetry();
    // The interceptor calls markUp/markDown with the outcome. GET /auth/session answers
    // 200, signed in or not.
    this.api.session().subscribe({ error: () => undefined });
  }

  ngOnDestroy(): void {
    this.clearRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer === undefined) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.retryNow();
      }, API_RETRY_MS);
    }
  }

  private clearRetry(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}
