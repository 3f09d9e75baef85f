import {
  ChangeDetectionStrategy,
  Component,
  ElementRef,
  Injector,
  afterNextRender,
  inject,
  signal,
  viewChild,
} from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { NavigationEnd, Router, RouterLink, RouterLinkActive, RouterOutlet } from '@angular/router';
import { filter } from 'rxjs';

import { toApiError } from './api/api-error';
import { ApiStatus } from './core/api-status.service';
import { AuthService } from './core/auth.service';
import { NoticeService } from './core/notice.service';
import { SIGN_IN_PATH } from './core/return-url';

/** The path of a router URL, without its query and fragment. */
function pathOf(url: string): string {
  return url.split(/[?#]/, 1)[0];
}

/** The shell: header with navigation and who is signed in, the API banner, the page. */
@Component({
  selector: 'app-root',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [RouterOutlet, RouterLink, RouterLinkActive],
  templateUrl: './app.html',
})
export class App {
  protected readonly apiStatus = inject(ApiStatus);
  protected readonly notices = inject(NoticeService);
  protected readonly auth = inject(AuthService);
  protected readonly signingOut = signal(false);
  protected readonly signOutError = signal<string | null>(null);
  /** Said by a polite live region after a navigation: the new page's title. */
  protected readonly announcement = signal('');

  private readonly main = viewChild.required<ElementRef<HTMLElement>>('main');
  private readonly injector = inject(Injector);
  private readonly router = inject(Router);

  constructor() {
    let shownPath: string | null = null;
    this.router.events
      .pipe(
        filter((event): event is NavigationEnd => event instanceof NavigationEnd),
        takeUntilDestroyed(),
      )
      .subscribe((event) => {
        const path = pathOf(event.urlAfterRedirects);
        const previous = shownPath;
        shownPath = path;
        // The first page keeps the browser's own start; a new query on the same page
        // (status filter, paging) leaves focus on the control that changed it.
        if (previous !== null && previous !== path) {
          this.signOutError.set(null);
          afterNextRender(() => this.focusPage(), { injector: this.injector });
        }
      });
  }

  /** POST /auth/logout, then the sign-in page. */
  protected signOut(): void {
    if (this.signingOut()) {
      return;
    }
    this.signingOut.set(true);
    this.signOutError.set(null);
    this.auth.signOut().subscribe({
      next: () => {
        this.signingOut.set(false);
        this.notices.show('You are signed out.');
        void this.router.navigateByUrl(SIGN_IN_PATH);
      },
      error: (error: unknown) => {
        this.signingOut.set(false);
        this.signOutError.set(`Could not sign out: ${toApiError(error).message}`);
      },
    });
  }

  /**
   * The skip link: focus the main region in place. Followed as a link, href="#main"
   * resolves against <base href="/"> and loads "/#main", a new page that loses whatever
   * was typed; the href stays for "copy link" and for screen readers' link lists.
   */
  protected skipToMain(event: Event): void {
    event.preventDefault();
    this.main().nativeElement.focus();
  }

  protected dismissNotice(): void {
    this.notices.dismiss();
    // The button goes away with the notice: keep focus off <body>.
    this.main().nativeElement.focus();
  }

  /**
   * After a navigation to another page: focus its heading (pages give their <h1>
   * tabindex="-1"), or the main region while the page has none yet (a job still
   * loading), and announce the page's title.
   */
  private focusPage(): void {
    const main = this.main().nativeElement;
    const heading = main.querySelector<HTMLElement>('h1[tabindex="-1"]');
    (heading ?? main).focus();
    this.announcement.set(document.title);
  }
}
