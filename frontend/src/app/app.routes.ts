import { Routes } from '@angular/router';

import { adminGuard, signedInGuard, signedOutGuard } from './core/auth.guard';

/** Every page but /sign-in needs a signed-in user (signedInGuard sends the others to sign in). */
export const routes: Routes = [
  { path: '', pathMatch: 'full', redirectTo: 'jobs' },
  {
    path: 'sign-in',
    title: 'Sign in · Taskbroker',
    canActivate: [signedOutGuard],
    loadComponent: () => import('./pages/sign-in/sign-in.page').then((m) => m.SignInPage),
  },
  {
    path: 'submit',
    title: 'Submit · Taskbroker',
    canActivate: [signedInGuard],
    loadComponent: () => import('./pages/submit/submit.page').then((m) => m.SubmitPage),
  },
  {
    path: 'jobs',
    title: 'My jobs · Taskbroker',
    canActivate: [signedInGuard],
    loadComponent: () => import('./pages/jobs/jobs.page').then((m) => m.JobsPage),
  },
  {
    path: 'jobs/:id',
    title: 'Job · Taskbroker',
    canActivate: [signedInGuard],
    loadComponent: () => import('./pages/job-detail/job-detail.page').then((m) => m.JobDetailPage),
  },
  {
    path: 'tokens',
    title: 'API tokens · Taskbroker',
    canActivate: [signedInGuard],
    loadComponent: () => import('./pages/tokens/tokens.page').then((m) => m.TokensPage),
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
    loadComponent: () => import('./pages/admins-only.page').then((m) => m.AdminsOnlyPage),
  },
  {
    path: '**',
    title: 'Not found · Taskbroker',
    canActivate: [signedInGuard],
    loadComponent: () => import('./pages/not-found.page').then((m) => m.NotFoundPage),
  },
];
