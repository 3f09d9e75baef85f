import { ChangeDetectionStrategy, Component } from '@angular/core';
import { RouterLink } from '@angular/router';

/** What a signed-in user who is not an admin sees at an admin page's address. */
@Component({
  selector: 'app-admins-only-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [RouterLink],
  template: `
    <section class="page state" data-testid="admins-only">
      <h1 tabindex="-1">Admins only</h1>
      <p>The overview of the whole system is for admins. Your own jobs are on My jobs.</p>
      <a class="btn" routerLink="/jobs">Go to my jobs</a>
    </section>
  `,
})
export class AdminsOnlyPage {}
