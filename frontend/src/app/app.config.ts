import {
  provideHttpClient,
  withFetch,
  withInterceptors,
  withXsrfConfiguration,
} from '@angular/common/http';
import { ApplicationConfig, provideBrowserGlobalErrorListeners } from '@angular/core';
import { provideRouter, withComponentInputBinding } from '@angular/router';

import { routes } from './app.routes';
import { apiStatusInterceptor } from './core/api-status.interceptor';
import { authInterceptor } from './core/auth.interceptor';

export const appConfig: ApplicationConfig = {
  providers: [
    provideBrowserGlobalErrorListeners(),
    provideRouter(routes, withComponentInputBinding()),
    provideHttpClient(
      withFetch(),
      // Litestar's CSRF protection: every POST, PUT, PATCH and DELETE repeats the readable
      // `csrftoken` cookie in X-CSRFToken. Angular adds it to same-origin (relative) URLs
      // only, which all of ours are.
      withXsrfConfiguration({ cookieName: 'csrftoken', headerName: 'X-CSRFToken' }),
      withInterceptors([apiStatusInterceptor, authInterceptor]),
    ),
  ],
};
