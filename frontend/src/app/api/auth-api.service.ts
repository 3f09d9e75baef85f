import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable, map } from 'rxjs';

import { API_BASE } from './api-base';
import { LoginRequest, Message, SessionState, SessionUser } from './auth.model';

/**
 * Sign-in calls. The session lives in an HttpOnly cookie the browser sends by itself;
 * state-changing calls carry the CSRF header (withXsrfConfiguration in app.config.ts).
 */
@Injectable({ providedIn: 'root' })
export class AuthApi {
  private readonly http = inject(HttpClient);
  private readonly base = inject(API_BASE);

  /** 200 with the user (and the session cookie); 401 for wrong credentials; 429 when throttled. */
  login(request: LoginRequest): Observable<SessionUser> {
    return this.http.post<SessionUser>(`${this.base}/auth/login`, request);
  }

  logout(): Observable<Message> {
    return this.http.post<Message>(`${this.base}/auth/logout`, null);
  }

  /** The signed-in user, or null: GET /auth/session answers 200 either way. */
  session(): Observable<SessionUser | null> {
    return this.http
      .get<SessionState>(`${this.base}/auth/session`)
      .pipe(
        map((state) => (state.signed_in ? { username: state.username, role: state.role } : null)),
      );
  }
}
