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
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';

import { ApiError, toApiError } from '../../api/api-error';
import { ApiToken, CreatedToken, TOKEN_NAME_MAX } from '../../api/auth.model';
import { TokensApi } from '../../api/tokens-api.service';
import { ApiStatus } from '../../core/api-status.service';
import { Clock } from '../../core/clock.service';
import { ConfirmDialog } from '../../shared/confirm-dialog';
import { formatRelative, formatTimestamp } from '../../shared/eta';
import { WebhookSecretSection } from './webhook-secret';
import { copySecret } from '../../shared/copy-secret';

/** What happened last on the page, said next to the list. */
interface PageMessage {
  text: string;
  error: boolean;
}

/** A token's expiry as the list shows it: the day, and how far off (null: never expires). */
function expiry(
  iso: string | null | undefined,
  now: number,
): { day: string; relative: string; title: string } | null {
  if (!iso) {
    return null;
  }
  const at = Date.parse(iso);
  return {
    day: formatTimestamp(iso).slice(0, 10),
    relative: at <= now ? 'expired' : formatRelative(at, now),
    title: formatTimestamp(iso),
  };
}

function newestFirst(tokens: ApiToken[]): ApiToken[] {
  return [...tokens].sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
}

/**
 * The signed-in user's API tokens: list, create (the secret shown once), revoke; and below
 * them the webhook signing secret ({@link WebhookSecretSection}).
 */
@Component({
  selector: 'app-tokens-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [ReactiveFormsModule, ConfirmDialog, WebhookSecretSection],
  templateUrl: './tokens.page.html',
})
export class TokensPage implements OnInit {
  private readonly api = inject(TokensApi);
  private readonly clock = inject(Clock);
  private readonly injector = inject(Injector);
  private readonly destroyRef = inject(DestroyRef);
  private readonly createdMessage = viewChild<ElementRef<HTMLElement>>('createdMessage');
  private readonly listHeading = viewChild<ElementRef<HTMLElement>>('listHeading');
  private readonly pageMessage = viewChild<ElementRef<HTMLElement>>('pageMessage');

  protected readonly nameMax = TOKEN_NAME_MAX;
  protected readonly tokens = signal<ApiToken[] | null>(null);
  protected readonly loading = signal(false);
  protected readonly loadError = signal<ApiError | null>(null);

  protected readonly form = new FormGroup({
    name: new FormControl('', {
      nonNullable: true,
      validators: [Validators.required, Validators.maxLength(TOKEN_NAME_MAX)],
    }),
  });
  private readonly name = this.form.controls.name;
  protected readonly attempted = signal(false);
  protected readonly creating = signal(false);
  protected readonly serverNameError = signal<string | null>(null);
  protected readonly createError = signal<string | null>(null);
  /** The token just created, with its secret: on screen until "Done", never again. */
  protected readonly created = signal<CreatedToken | null>(null);
  protected readonly copyStatus = signal('');

  protected readonly confirming = signal<ApiToken | null>(null);
  protected readonly revoking = signal<string | null>(null);
  protected readonly message = signal<PageMessage | null>(null);

  protected readonly rows = computed(() => {
    const now = this.clock.now();
    return (this.tokens() ?? []).map((token) => ({
      token,
      created: formatTimestamp(token.created_at),
      createdRelative: formatRelative(Date.parse(token.created_at), now),
      lastUsed: token.last_used_at ? formatRelative(Date.parse(token.last_used_at), now) : null,
      lastUsedTitle: token.last_used_at ? formatTimestamp(token.last_used_at) : null,
      expiry: expiry(token.expires_at, now),
    }));
  });

  /** When the token just created stops working. */
  protected readonly createdExpiry = computed(() => {
    const created = this.created();
    return created ? expiry(created.expires_at, this.clock.now()) : null;
  });

  constructor() {
    inject(ApiStatus)
      .recovered.pipe(takeUntilDestroyed())
      .subscribe(() => {
        if (this.loadError()) {
          this.load();
        }
      });
    this.name.valueChanges.pipe(takeUntilDestroyed()).subscribe(() => {
      this.serverNameError.set(null);
    });
  }

  ngOnInit(): void {
    this.load();
  }

  protected load(): void {
    this.loading.set(true);
    this.loadError.set(null);
    this.api
      .list()
      .pipe(takeUntilDestroyed(this.destroyRef))
      .subscribe({
        next: (tokens) => {
          this.loading.set(false);
          this.tokens.set(newestFirst(tokens));
        },
        error: (error: unknown) => {
          this.loading.set(false);
          this.loadError.set(toApiError(error));
        },
      });
  }

  protected nameError(): string | null {
    const server = this.serverNameError();
    if (server) {
      return server;
    }
    const control = this.name;
    if (!(control.touched || this.attempted())) {
      return null;
    }
    if (!control.value.trim()) {
      return 'Give the token a name, e.g. what will use it.';
    }
    if (control.hasError('maxlength')) {
      return `At most ${TOKEN_NAME_MAX} characters.`;
    }
    return null;
  }

  protected create(): void {
    if (this.creating()) {
      return;
    }
    this.attempted.set(true);
    this.name.markAsTouched();
    this.createError.set(null);
    const name = this.name.value.trim();
    if (!name || name.length > TOKEN_NAME_MAX) {
      setTimeout(() => document.getElementById('token-name')?.focus());
      return;
    }
    this.creating.set(true);
    this.api
      .create(name)
      .pipe(takeUntilDestroyed(this.destroyRef))
      .subscribe({
        next: (created) => {
          this.creating.set(false);
          this.attempted.set(false);
          this.name.reset('');
          this.message.set(null);
          this.copyStatus.set('');
          this.created.set(created);
          const listed: ApiToken = {
            id: created.id,
            name: created.name,
            created_at: created.created_at,
            last_used_at: created.last_used_at,
            expires_at: created.expires_at ?? null,
          };
          this.tokens.update((tokens) =>
            newestFirst([listed, ...(tokens ?? []).filter((t) => t.id !== created.id)]),
          );
          // Focus the secret's box, so it is read out with its warning.
          this.focusSoon(this.createdMessage);
        },
        error: (error: unknown) => {
          this.creating.set(false);
          const apiError = toApiError(error);
          if (apiError.fields['name']) {
            this.serverNameError.set(apiError.fields['name']);
            setTimeout(() => document.getElementById('token-name')?.focus());
          } else {
            this.createError.set(`Could not create the token: ${apiError.message}`);
          }
        },
      });
  }

  /** Copy the secret; when the browser refuses, select it for Ctrl+C. */
  protected async copy(input: HTMLInputElement): Promise<void> {
    const secret = this.created()?.token;
    if (secret) {
      this.copyStatus.set(await copySecret(secret, input, 'token'));
    }
  }

  /** "Done": the secret leaves the page for good. */
  protected forgetSecret(): void {
    this.created.set(null);
    this.copyStatus.set('');
    this.focusSoon(this.listHeading);
  }

  protected ask(token: ApiToken): void {
    if (this.revoking()) {
      return;
    }
    this.message.set(null);
    this.confirming.set(token);
  }

  protected dismiss(): void {
    this.confirming.set(null);
  }

  protected revoke(): void {
    const token = this.confirming();
    this.confirming.set(null);
    if (!token) {
      return;
    }
    this.revoking.set(token.id);
    this.api
      .revoke(token.id)
      .pipe(takeUntilDestroyed(this.destroyRef))
      .subscribe({
        next: () => {
          this.revoking.set(null);
          this.tokens.update((tokens) => (tokens ?? []).filter((t) => t.id !== token.id));
          if (this.created()?.id === token.id) {
            this.created.set(null);
          }
          // The row (and its button, where focus was) is gone: focus the message instead.
          this.message.set({ text: `Token ${token.name} revoked.`, error: false });
          this.focusSoon(this.pageMessage);
        },
        error: (error: unknown) => {
          this.revoking.set(null);
          const apiError = toApiError(error);
          this.message.set({
            text: `Could not revoke token ${token.name}: ${apiError.message}`,
            error: true,
          });
          this.focusSoon(this.pageMessage);
          if (apiError.status === 404) {
            this.load(); // gone already: show what is left
          }
        },
      });
  }

  private focusSoon(target: () => ElementRef<HTMLElement> | undefined): void {
    afterNextRender(() => target()?.nativeElement.focus(), { injector: this.injector });
  }
}
