import { Routes } from '@angular/router';

export const routes: Routes = [
  { path: '', pathMatch: 'full', redirectTo: 'jobs' },
  {
    path: 'submit',
    title: 'Submit · Taskbroker',
    loadComponent: () => import('./pages/submit/submit.page').then((m) => m.SubmitPage),
  },
  {
    path: 'jobs',
    title: 'My jobs · Taskbroker',
    loadComponent: () => import('./pages/jobs/jobs.page').then((m) => m.JobsPage),
  },
  {
    path: 'jobs/:id',
    title: 'Job · Taskbroker',
    loadComponent: () => import('./pages/job-detail/job-detail.page').then((m) => m.JobDetailPage),
  },
  {
    path: '**',
    title: 'Not found · Taskbroker',
    loadComponent: () => import('./pages/not-found.page').then((m) => m.NotFoundPage),
  },
];
