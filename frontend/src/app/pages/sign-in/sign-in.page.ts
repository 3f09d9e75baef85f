import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  ElementRef,
  Injector,
  afterNextRender,
  computed,
  inject,
  input,
  signal,
  viewChild,
} from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { HttpErrorResponse } from '@angular/common/http';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { Router } from '@angular/router';

import { toApiError } from '../../api/api-error';
import { ApiStatus } from '../../core/api-status.service';
import { AuthService } from '../../core/auth.service';
import { DEFAULT_RETURN_URL, safeReturnUrl } from '../../core/return-url';
import { formatDuration } from '../../shared/eta';

type FieldName = 'username' | 'password';

/**
 * Seconds to wait from a Retry-After header: delta-seconds ("30") or an HTTP date.
 * Null when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (!value) {
    return null;
  }
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) {
    return Number(trimmed);
  }
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}

/** Sign in with a user name and a password; then back to where the user was going. */
@Component({
  selector: 'app-sign-in-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [ReactiveFormsModule],
  templateUrl: './sign-in.page.html',
})
export class SignInPage {
  private readonly auth = inject(AuthService);
  private readonly router = inject(Router);
  private readonly injector = inject(Injector);
  private readonly destroyRef = inject(DestroyRef);
  private readonly errorMessage = viewChild<ElementRef<HTMLElement>>('errorMessage');

  /** Query parameter (bound by the router): the page to go to once signed in. */
  readonly returnUrl = input<string>();

  protected readonly target = computed(() => safeReturnUrl(this.returnUrl()) ?? DEFAULT_RETURN_URL);
  /** Sent here from a page (rather than coming to sign in): say why. */
  protected readonly redirected = computed(() => safeReturnUrl(this.returnUrl()) !== null);

  protected readonly submitting = signal(false);
  protected readonly attempted = signal(false);
  protected readonly error = signal<string | null>(null);
  /** After a 429: no new attempt before this time (ms since epoch). */
  private blockedUntil = 0;

  protected readonly form = new FormGroup({
    username: new FormControl('', { nonNullable: true, validators: [Validators.required] }),
    password: new FormControl('', { nonNullable: true, validators: [Validators.required] }),
  });

  constructor() {
    // Came here because the API was down at start? When it is back, the session may
    // turn out to be valid after all: go on without asking for the password.
    inject(ApiStatus)
      .recovered.pipe(takeUntilDestroyed())
      .subscribe(() =>
        this.auth
          .session()
          .pipe(takeUntilDestroyed(this.destroyRef))
          .subscribe((user) => {
            if (user) {
              void this.router.navigateByUrl(this.target());
            }
          }),
      );
  }

  protected fieldError(name: FieldName): string | null {
    const control = this.form.controls[name];
    if (control.valid || !(control.touched || this.attempted())) {
      return null;
    }
    return name === 'username' ? 'Enter your user name.' : 'Enter your password.';
  }

  protected submit(): void {
    if (this.submitting()) {
      return;
    }
    this.attempted.set(true);
    this.form.markAllAsTouched();
    this.error.set(null);
    if (this.form.invalid) {
      const first: FieldName = this.form.controls.username.invalid ? 'username' : 'password';
      // Let the error text render first so the screen reader reads it with the field.
      setTimeout(() => document.getElementById(`field-${first}`)?.focus());
      return;
    }
    const wait = Math.ceil((this.blockedUntil - Date.now()) / 1000);
    if (wait > 0) {
      this.showError(`Too many sign-in attempts. Try again in ${formatDuration(wait)}.`);
      return;
    }
    const { username, password } = this.form.getRawValue();
    this.submitting.set(true);
    this.auth
      .signIn(username.trim(), password)
      .pipe(takeUntilDestroyed(this.destroyRef))
      .subscribe({
        next: () => {
          this.submitting.set(false);
          // The shell moves focus to the new page's heading.
          void this.router.navigateByUrl(this.target());
        },
        error: (error: unknown) => {
          this.submitting.set(false);
          this.showError(this.describe(error));
        },
      });
  }

  private describe(error: unknown): string {
    const apiError = toApiError(error);
    if (apiError.unreachable) {
      return `${apiError.message} Try again when it is back.`;
    }
    if (apiError.status === 401) {
      return 'Wrong user name or password.';
    }
    if (apiError.status === 429) {
      const retryAfter =
        error instanceof HttpErrorResponse
          ? parseRetryAfter(error.headers.get('Retry-After'))
          : null;
      if (retryAfter === null) {
        return 'Too many sign-in attempts. Wait a little, then try again.';
      }
      this.blockedUntil = Date.now() + retryAfter * 1000;
      return `Too many sign-in attempts. Try again in ${formatDuration(Math.max(1, retryAfter))}.`;
    }
    return `Could not sign in: ${apiError.message}`;
  }

  /** Show the message and move focus to it, so it is read out. */
  private showError(message: string): void {
    this.error.set(message);
    afterNextRender(() => this.errorMessage()?.nativeElement.focus(), { injector: this.injector });
  }
}
