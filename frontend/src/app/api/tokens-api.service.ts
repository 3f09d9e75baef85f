import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

import { API_BASE } from './api-base';
import { ApiToken, CreatedToken, Message } from './auth.model';

/** The signed-in user's API tokens (for scripts and the CLI). */
@Injectable({ providedIn: 'root' })
export class TokensApi {
  private readonly http = inject(HttpClient);
  private readonly base = inject(API_BASE);

  list(): Observable<ApiToken[]> {
    return this.http.get<ApiToken[]>(`${this.base}/tokens`);
  }

  /** Create a token; the answer holds its secret, which is never sent again. */
  create(name: string): Observable<CreatedToken> {
    return this.http.post<CreatedToken>(`${this.base}/tokens`, { name });
  }

  revoke(id: string): Observable<Message> {
    return this.http.delete<Message>(`${this.base}/tokens/${encodeURIComponent(id)}`);
  }
}
