import { inject, provideAppInitializer } from '@angular/core';
import { bootstrapApplication } from '@angular/platform-browser';
import { appConfig } from './app/app.config';
import { App } from './app/app';
import { AuthService } from './app/core/auth.service';
import { EARLY_SESSION, startSessionRequest } from './app/core/early-session';

// Who is signed in, asked before Angular boots (index.html preloads the answer).
const session = startSessionRequest();
// How long the app waits for that answer before its first render, at most: it is usually
// there already; a slow API shows the bare header rather than nothing.
const EARLY_SESSION_WAIT_MS = 500;

bootstrapApplication(App, {
  ...appConfig,
  providers: [
    ...appConfig.providers,
    { provide: EARLY_SESSION, useValue: session },
    provideAppInitializer(() => inject(AuthService).settleEarly(EARLY_SESSION_WAIT_MS)),
  ],
}).catch((err) => console.error(err));
