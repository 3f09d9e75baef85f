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
import { RouterLink } from '@angular/router';
import { Observable } from 'rxjs';

import { ApiError, toApiError } from '../../api/api-error';
import { ExecutorInfo, JobExecutionRequest, TaskInfo } from '../../api/job.model';
import { JobsApi } from '../../api/jobs-api.service';
import { ApiStatus } from '../../core/api-status.service';
import { AuthService } from '../../core/auth.service';
import { jsonObjectValidator, parseParams } from '../../shared/params';
import {
  futureTimeValidator,
  httpUrlValidator,
  parseRunAt,
  toLocalInput,
  zoneDescription,
} from '../../shared/schedule';

type FieldName =
  'task' | 'executor' | 'description' | 'estimatedTime' | 'params' | 'runAt' | 'callbackUrl';

/** In the order of the form, for "focus the first field in error". */
const FIELD_ORDER: FieldName[] = [
  'task',
  'executor',
  'estimatedTime',
  'description',
  'params',
  'runAt',
  'callbackUrl',
];

/** Request field (as the server names it) -> form control. */
const SERVER_FIELDS: Record<string, FieldName> = {
  job_name: 'task',
  name: 'task',
  executor: 'executor',
  description: 'description',
  estimated_time: 'estimatedTime',
  params: 'params',
  run_at: 'runAt',
  delay: 'runAt',
  callback_url: 'callbackUrl',
};

/**
 * A refusal that names no field in `errors` but whose message is about one (the
 * WEBHOOK_ALLOWED_HOSTS 422, say): the field it is about.
 */
function fieldInMessage(message: string): FieldName | null {
  if (/callback_url|WEBHOOK_ALLOWED_HOSTS|callback URL/i.test(message)) {
    return 'callbackUrl';
  }
  if (/\brun_at\b|\bdelay\b/.test(message)) {
    return 'runAt';
  }
  return null;
}

const MAX_ESTIMATE = 7 * 24 * 3600;

/** Submit a job: pick a task and an executor, describe it, give params as JSON. */
@Component({
  selector: 'app-submit-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [ReactiveFormsModule, RouterLink],
  templateUrl: './submit.page.html',
})
export class SubmitPage implements OnInit {
  private readonly api = inject(JobsApi);
  private readonly destroyRef = inject(DestroyRef);
  private readonly injector = inject(Injector);
  protected readonly auth = inject(AuthService);
  private readonly submittedMessage = viewChild<ElementRef<HTMLElement>>('submitted');

  protected readonly tasks = signal<TaskInfo[] | null>(null);
  protected readonly tasksError = signal<ApiError | null>(null);
  protected readonly executors = signal<ExecutorInfo[] | null>(null);
  protected readonly executorsError = signal<ApiError | null>(null);
  protected readonly submitting = signal(false);
  protected readonly attempted = signal(false);
  protected readonly serverErrors = signal<Partial<Record<FieldName, string>>>({});
  protected readonly generalError = signal<string | null>(null);
  protected readonly created = signal<{ id: string; name: string } | null>(null);
  /** The server refused the callback URL because its owner has no webhook secret yet. */
  protected readonly needsWebhookSecret = computed(() =>
    /webhook secret/i.test(this.serverErrors().callbackUrl ?? ''),
  );

  protected readonly form = new FormGroup({
    task: new FormControl('', { nonNullable: true, validators: [Validators.required] }),
    executor: new FormControl('', { nonNullable: true, validators: [Validators.required] }),
    description: new FormControl('', {
      nonNullable: true,
      validators: [Validators.maxLength(2000)],
    }),
    estimatedTime: new FormControl<number | null>(10, [
      Validators.required,
      Validators.min(0),
      Validators.max(MAX_ESTIMATE),
    ]),
    params: new FormControl('{}', { nonNullable: true, validators: [jsonObjectValidator] }),
    runAt: new FormControl('', { nonNullable: true, validators: [futureTimeValidator] }),
    callbackUrl: new FormControl('', {
      nonNullable: true,
      validators: [httpUrlValidator, Validators.maxLength(2048)],
    }),
  });

  /** The zone "Run at" is read in, and a time to show its format with (an hour ahead). */
  protected readonly zone = zoneDescription(Date.now());
  protected readonly runAtExample = toLocalInput(Date.now() + 3_600_000)
    .slice(0, 16)
    .replace('T', ' ');

  constructor() {
    inject(ApiStatus)
      .recovered.pipe(takeUntilDestroyed())
      .subscribe(() => this.loadChoices());
    for (const name of Object.keys(this.form.controls) as FieldName[]) {
      const changes: Observable<unknown> = this.form.controls[name].valueChanges;
      changes.pipe(takeUntilDestroyed()).subscribe(() => this.clearServerError(name));
    }
  }

  ngOnInit(): void {
    this.loadChoices();
  }

  protected loadChoices(): void {
    if (this.tasks() === null || this.tasksError()) {
      this.tasksError.set(null);
      this.api
        .tasks()
        .pipe(takeUntilDestroyed(this.destroyRef))
        .subscribe({
          next: (tasks) => this.tasks.set([...tasks].sort((a, b) => a.name.localeCompare(b.name))),
          error: (error: unknown) => this.tasksError.set(toApiError(error)),
        });
    }
    if (this.executors() === null || this.executorsError()) {
      this.executorsError.set(null);
      this.api
        .executors()
        .pipe(takeUntilDestroyed(this.destroyRef))
        .subscribe({
          next: (executors) => {
            this.executors.set(executors);
            const control = this.form.controls.executor;
            if (!control.value && executors.length) {
              control.setValue((executors.find((e) => e.default) ?? executors[0]).name);
            }
          },
          error: (error: unknown) => this.executorsError.set(toApiError(error)),
        });
    }
  }

  protected selectedTask(): TaskInfo | undefined {
    const name = this.form.controls.task.value;
    return this.tasks()?.find((task) => task.name === name);
  }

  /** The message to show beside a field: the server's, else the form's own check. */
  protected errorFor(name: FieldName): string | null {
    const server = this.serverErrors()[name];
    if (server) {
      return server;
    }
    const control = this.form.controls[name];
    if (control.valid || !(control.touched || this.attempted())) {
      return null;
    }
    const errors = control.errors ?? {};
    if (errors['required']) {
      return {
        task: 'Choose a task.',
        executor: 'Choose an executor.',
        estimatedTime: 'Give an estimated time in seconds.',
        description: 'Required.',
        params: 'Required.',
        runAt: 'Required.',
        callbackUrl: 'Required.',
      }[name];
    }
    if (errors['min']) {
      return 'Must be 0 or more seconds.';
    }
    if (errors['max']) {
      return `At most ${MAX_ESTIMATE} seconds (a week).`;
    }
    if (errors['maxlength']) {
      return `At most ${errors['maxlength'].requiredLength} characters.`;
    }
    if (errors['params']) {
      return errors['params'] as string;
    }
    if (errors['runAt']) {
      return errors['runAt'] as string;
    }
    if (errors['url']) {
      return errors['url'] as string;
    }
    return 'Invalid value.';
  }

  protected submit(): void {
    if (this.submitting()) {
      return;
    }
    this.attempted.set(true);
    this.form.markAllAsTouched();
    this.generalError.set(null);
    // "Run at" may have passed since it was picked: check it again now.
    this.form.controls.runAt.updateValueAndValidity();
    if (this.form.invalid) {
      this.focusFirstInvalid();
      return;
    }
    const value = this.form.getRawValue();
    const request: JobExecutionRequest = {
      job_name: value.task,
      estimated_time: Number(value.estimatedTime),
      description: value.description.trim() || null,
      params: parseParams(value.params).value,
    };
    const runAt = value.runAt.trim() ? parseRunAt(value.runAt) : null;
    if (runAt && 'at' in runAt) {
      request.run_at = new Date(runAt.at).toISOString();
    }
    if (value.callbackUrl.trim()) {
      request.callback_url = value.callbackUrl.trim();
    }
    this.submitting.set(true);
    this.created.set(null);
    this.api
      .submit(value.executor, request)
      .pipe(takeUntilDestroyed(this.destroyRef))
      .subscribe({
        next: (response) => {
          this.submitting.set(false);
          this.serverErrors.set({});
          this.created.set({ id: response.job_id, name: request.job_name });
          // Focus the result (read out with its link to the job), not whatever was last.
          afterNextRender(() => this.submittedMessage()?.nativeElement.focus(), {
            injector: this.injector,
          });
        },
        error: (error: unknown) => {
          this.submitting.set(false);
          this.showServerError(toApiError(error));
        },
      });
  }

  private showServerError(error: ApiError): void {
    const mapped: Partial<Record<FieldName, string>> = {};
    const unmapped: string[] = [];
    for (const [key, message] of Object.entries(error.fields)) {
      const field = SERVER_FIELDS[key];
      if (field) {
        mapped[field] = message;
      } else {
        unmapped.push(`${key}: ${message}`);
      }
    }
    if (!Object.keys(error.fields).length) {
      const field = fieldInMessage(error.message);
      if (field) {
        mapped[field] = error.message;
      }
    }
    this.serverErrors.set(mapped);
    const hasFieldError = Object.keys(mapped).length > 0;
    if (!hasFieldError || unmapped.length) {
      this.generalError.set(unmapped.length ? unmapped.join('; ') : error.message);
    }
    if (hasFieldError) {
      this.focusFirstInvalid();
    }
  }

  private clearServerError(name: FieldName): void {
    if (this.serverErrors()[name]) {
      this.serverErrors.update((errors) => ({ ...errors, [name]: undefined }));
    }
  }

  private focusFirstInvalid(): void {
    // Let the error text render first so the screen reader reads it with the field.
    setTimeout(() => {
      const first = FIELD_ORDER.find((name) => this.errorFor(name));
      if (first) {
        document.getElementById(`field-${first}`)?.focus();
      }
    });
  }
}
