import { bootstrapApplication } from '@angular/platform-browser';
import { appConfig } from './app/app.config';
import { App } from './app/app';
import { EARLY_SESSION, startSessionRequest } from './app/core/early-session';

// Who is signed in, asked before Angular boots: the first page's guard finds it (nearly) known.
const session = startSessionRequest();

bootstrapApplication(App, {
  ...appConfig,
  providers: [...appConfig.providers, { provide: EARLY_SESSION, useValue: session }],
}).catch((err) => console.error(err));
