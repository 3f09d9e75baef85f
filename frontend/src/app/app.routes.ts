import { Routes } from '@angular/router';

import { adminGuard, signedInGuard, signedOutGuard } from './core/auth.guard';
import { AdminsOnlyPage } from './pages/admins-only.page';
import { JobDetailPage } from './pages/job-detail/job-detail.page';
import { JobsPage } from './pages/jobs/jobs.page';
import { NotFoundPage } from './pages/not-found.page';
import { SignInPage } from './pages/sign-in/sign-in.page';
import { SubmitPage } from './pages/submit/submit.page';
import { TokensPage } from './pages/tokens/tokens.page';

/**
 * Every page but /sign-in needs a signed-in user (signedInGuard sends the others to sign in).
 *
 * The pages come with the app's first bundles (a few KiB each, compressed): a lazy page
 * costs a phone two more round trips before its first request (its chunk, then the chunks
 * that chunk imports). Only the overview, for admins, loads on demand; its charts later still.
 */
export const routes: Routes = [
  { path: '', pathMatch: 'full', redirectTo: 'jobs' },
  {
    path: 'sign-in',
    title: 'Sign in · Taskbroker',
    canActivate: [signedOutGuard],
    component: SignInPage,
  },
  {
    path: 'submit',
    title: 'Submit · Taskbroker',
    canActivate: [signedInGuard],
    component: SubmitPage,
  },
  {
    path: 'jobs',
    title: 'My jobs · Taskbroker',
    canActivate: [signedInGuard],
    component: JobsPage,
  },
  {
    path: 'jobs/:id',
    title: 'Job · Taskbroker',
    canActivate: [signedInGuard],
    component: JobDetailPage,
  },
  {
    path: 'tokens',
    title: 'API tokens · Taskbroker',
    canActivate: [signedInGuard],
    component: TokensPage,
  },
  {
    path: 'overview',
    title: 'Overview · Taskbroker',
    canMatch: [adminGuard],
    loadComponent: () => import('./pages/overview/overview.page').then((m) => m.OverviewPage),
  },
  {
    // Not an admin (adminGuard did not match): say so, rather than "not found".
    path: 'overview',
    title: 'Overview · Taskbroker',
    canActivate: [signedInGuard],
    component: AdminsOnlyPage,
  },
  {
    path: '**',
    title: 'Not found · Taskbroker',
    canActivate: [signedInGuard],
    component: NotFoundPage,
  },
];
