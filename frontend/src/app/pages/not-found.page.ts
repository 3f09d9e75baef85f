import { ChangeDetectionStrategy, Component } from '@angular/core';
import { RouterLink } from '@angular/router';

@Component({
  selector: 'app-not-found-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [RouterLink],
  template: `
    <section class="page state">
      <h1 tabindex="-1">Page not found</h1>
      <p>Nothing lives at this address.</p>
      <a class="btn" routerLink="/jobs">Go to my jobs</a>
    </section>
  `,
})
export class NotFoundPage {}
