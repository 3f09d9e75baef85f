import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  ElementRef,
  Injector,
  OnInit,
  afterNextRender,
  computed,
  inject,
  signal,
  viewChild,
} from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';

import { ApiError, toApiError } from '../../api/api-error';
import { WebhookSecret, WebhookSecretState } from '../../api/webhooks.model';
import { WebhooksApi } from '../../api/webhooks-api.service';
import { ApiStatus } from '../../core/api-status.service';
import { Clock } from '../../core/clock.service';
import { ConfirmDialog } from '../../shared/confirm-dialog';
import { formatRelative, formatTimestamp } from '../../shared/eta';
import { copySecret } from '../../shared/copy-secret';

/**
 * The signed-in user's webhook signing secret, on the API tokens page: whether there is
 * one and since when, make or rotate it (a rotation asks first), the new one shown once.
 */
@Component({
  selector: 'app-webhook-secret',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [ConfirmDialog],
  templateUrl: './webhook-secret.html',
})
export class WebhookSecretSection implements OnInit {
  private readonly api = inject(WebhooksApi);
  private readonly clock = inject(Clock);
  private readonly injector = inject(Injector);
  private readonly destroyRef = inject(DestroyRef);
  private readonly secretInput = viewChild<ElementRef<HTMLInputElement>>('secretInput');
  private readonly actionButton = viewChild<ElementRef<HTMLButtonElement>>('actionButton');

  protected readonly state = signal<WebhookSecretState | null>(null);
  protected readonly stateError = signal<ApiError | null>(null);
  protected readonly confirming = signal(false);
  protected readonly rotating = signal(false);
  protected readonly rotateError = signal<string | null>(null);
  /** The secret just made, on screen until "Done", never again. */
  protected readonly shown = signal<WebhookSecret | null>(null);
  protected readonly copyStatus = signal('');

  /** "2026-11-01 10:00:00" and "3 d 2 h ago": when the current secret was made. */
  protected readonly since = computed(() => {
    const at = this.state()?.rotated_at;
    if (!at) {
      return null;
    }
    return {
      timestamp: formatTimestamp(at),
      relative: formatRelative(Date.parse(at), this.clock.now()),
    };
  });

  constructor() {
    inject(ApiStatus)
      .recovered.pipe(takeUntilDestroyed())
      .subscribe(() => {
        if (this.stateError()) {
          this.load();
        }
      });
  }

  ngOnInit(): void {
    this.load();
  }

  protected load(): void {
    this.stateError.set(null);
    this.api
      .secretState()
      .pipe(takeUntilDestroyed(this.destroyRef))
      .subscribe({
        next: (state) => this.state.set(state),
        error: (error: unknown) => this.stateError.set(toApiError(error)),
      });
  }

  /** A first secret is made at once; replacing one asks first. */
  protected ask(): void {
    if (this.rotating()) {
      return;
    }
    if (this.state()?.exists) {
      this.confirming.set(true);
    } else {
      this.rotate();
    }
  }

  protected dismiss(): void {
    this.confirming.set(false);
  }

  protected rotate(): void {
    this.confirming.set(false);
    if (this.rotating()) {
      return;
    }
    const replacing = this.state()?.exists ?? false;
    this.rotating.set(true);
    this.rotateError.set(null);
    this.copyStatus.set('');
    this.api
      .rotateSecret()
      .pipe(takeUntilDestroyed(this.destroyRef))
      .subscribe({
        next: (made) => {
          this.rotating.set(false);
          this.state.set({ exists: true, rotated_at: made.rotated_at });
          this.shown.set(made);
          // Focus the secret itself: read out with its label and warning, and selected.
          afterNextRender(() => this.secretInput()?.nativeElement.focus(), {
            injector: this.injector,
          });
        },
        error: (error: unknown) => {
          this.rotating.set(false);
          const apiError = toApiError(error);
          this.rotateError.set(
            `Could not ${replacing ? 'rotate' : 'make'} the webhook secret: ${apiError.message}`,
          );
        },
      });
  }

  /** Copy the secret; when the browser refuses, select it for Ctrl+C. */
  protected async copy(input: HTMLInputElement): Promise<void> {
    const secret = this.shown()?.secret;
    if (secret) {
      this.copyStatus.set(await copySecret(secret, input, 'secret'));
    }
  }

  /** "Done": the secret leaves the page for good. */
  protected forgetSecret(): void {
    this.shown.set(null);
    this.copyStatus.set('');
    afterNextRender(() => this.actionButton()?.nativeElement.focus(), {
      injector: this.injector,
    });
  }
}
