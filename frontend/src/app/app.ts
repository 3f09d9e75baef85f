import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { RouterLink, RouterLinkActive, RouterOutlet } from '@angular/router';

import { ApiStatus } from './core/api-status.service';
import { NoticeService } from './core/notice.service';
import { UserService, isValidUserId } from './core/user.service';

/** The shell: header with navigation and the user id, the API banner, the page. */
@Component({
  selector: 'app-root',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [RouterOutlet, RouterLink, RouterLinkActive],
  templateUrl: './app.html',
})
export class App {
  protected readonly apiStatus = inject(ApiStatus);
  protected readonly notices = inject(NoticeService);
  protected readonly user = inject(UserService);
  protected readonly userError = signal<string | null>(null);

  /** Commit the typed user id (on Enter or when the field loses focus). */
  protected commitUser(input: HTMLInputElement): void {
    const value = input.value.trim();
    if (value === this.user.userId()) {
      this.userError.set(null);
      return;
    }
    if (!isValidUserId(value)) {
      this.userError.set(
        value ? 'No spaces, "/", "?" or "#"; at most 128 characters.' : 'Enter a user id.',
      );
      return;
    }
    this.userError.set(null);
    this.user.setUserId(value);
  }
}
