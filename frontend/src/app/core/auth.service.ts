import { HttpErrorResponse } from '@angular/common/http';
import { Injectable, computed, inject, signal } from '@angular/core';
import {
  Observable,
  catchError,
  finalize,
  from,
  map,
  of,
  shareReplay,
  switchMap,
  tap,
  throwError,
} from 'rxjs';

import { AuthApi } from '../api/auth-api.service';
import { SessionUser } from '../api/auth.model';
import { EARLY_SESSION } from './early-session';

/**
 * Who is signed in. The session itself is an HttpOnly cookie the app cannot read:
 * this keeps the answer of GET /api/v1/auth/session (or of the sign-in) for the header,
 * the route guards and the pages.
 */
@Injectable({ providedIn: 'root' })
export class AuthService {
  private readonly api = inject(AuthApi);
  private readonly userSignal = signal<SessionUser | null>(null);
  private pending: Observable<SessionUser | null> | null = null;
  /** The GET /auth/session main.ts started, used once: by the first page's guard. */
  private early = inject(EARLY_SESSION);

  /** The signed-in user, or null (not signed in, or not known yet). */
  readonly user = this.userSignal.asReadonly();
  readonly isAdmin = computed(() => this.userSignal()?.role === 'admin');

  /**
   * Wait (at most `maxMs`) for the early GET /auth/session, and keep its user: an app
   * initializer, so that the header shows who is signed in from its first render. Else, on
   * a phone, its second row (the navigation) arrives with the page and pushes it down.
   */
  settleEarly(maxMs: number): Promise<void> {
    const early = this.early;
    if (!early) {
      return Promise.resolve();
    }
    const known = early.then((user) => {
      // A user: used up here (after a sign-out, session() must ask the API, not reuse it).
      // Null or no answer: left for the first session() (no second request to say so).
      if (user && this.early === early) {
        this.early = null;
        this.userSignal.set(user);
      }
    });
    return Promise.race([known, new Promise<void>((resolve) => setTimeout(resolve, maxMs))]);
  }

  /**
   * The signed-in user: at once when known, else from GET /auth/session (one request
   * for all who ask meanwhile), which says "not signed in" with a 200. An API that cannot
   * be reached means "not signed in" too (the next call asks again). The first call takes
   * the answer of the request main.ts started before the app booted, when there is one.
   */
  session(): Observable<SessionUser | null> {
    const known = this.userSignal();
    if (known) {
      return of(known);
    }
    if (!this.pending) {
      const early = this.early;
      this.early = null;
      const ask = early
        ? from(early).pipe(
            switchMap((user) => (user === undefined ? this.api.session() : of(user))),
          )
        : this.api.session();
      this.pending = ask.pipe(
        tap((user) => this.userSignal.set(user)),
        catchError(() => of(null)),
        finalize(() => (this.pending = null)),
        shareReplay({ bufferSize: 1, refCount: false }),
      );
    }
    return this.pending;
  }

  /** POST /auth/login; the session cookie comes with the answer. */
  signIn(username: string, password: string): Observable<SessionUser> {
    return this.api.login({ username, password }).pipe(tap((user) => this.userSignal.set(user)));
  }

  /**
   * POST /auth/logout. A 401 means the session was gone already: signed out all the
   * same. Any other failure leaves the user signed in (the cookie may still be valid).
   */
  signOut(): Observable<void> {
    return this.api.logout().pipe(
      catchError((error: unknown) =>
        error instanceof HttpErrorResponse && error.status === 401
          ? of(null)
          : throwError(() => error),
      ),
      tap(() => this.clear()),
      map(() => undefined),
    );
  }

  /** Forget the user (the API said the session is no longer valid). */
  clear(): void {
    this.userSignal.set(null);
  }
}
