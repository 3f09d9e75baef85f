import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { Observable } from 'rxjs';

import { API_BASE } from './api-base';
import { WebhookSecret, WebhookSecretState } from './webhooks.model';

/** The signed-in user's webhook signing secret (deliveries to a callback_url are signed with it). */
@Injectable({ providedIn: 'root' })
export class WebhooksApi {
  private readonly http = inject(HttpClient);
  private readonly base = inject(API_BASE);

  /** Whether the user has a secret, and since when; never the secret itself. */
  secretState(): Observable<WebhookSecretState> {
    return this.http.get<WebhookSecretState>(`${this.base}/webhooks/secret`);
  }

  /** Make the first secret, or replace it: the answer is the only time it is shown. */
  rotateSecret(): Observable<WebhookSecret> {
    return this.http.post<WebhookSecret>(`${this.base}/webhooks/secret`, {});
  }
}
