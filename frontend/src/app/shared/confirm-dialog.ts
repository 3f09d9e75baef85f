import {
  AfterViewInit,
  ChangeDetectionStrategy,
  Component,
  ElementRef,
  OnDestroy,
  input,
  output,
  viewChild,
} from '@angular/core';

let nextId = 0;

/**
 * A modal yes/no question. Focus starts on the safe choice, Tab stays inside,
 * Escape or a click outside answers no, and focus returns where it was.
 */
@Component({
  selector: 'app-confirm-dialog',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <div class="dialog-backdrop" (click)="cancelled.emit()" aria-hidden="true"></div>
    <div
      #panel
      class="dialog"
      role="alertdialog"
      aria-modal="true"
      [attr.aria-labelledby]="titleId"
      [attr.aria-describedby]="messageId"
      (keydown)="onKeydown($event)"
    >
      <h2 class="dialog__title" [id]="titleId">{{ title() }}</h2>
      <p class="dialog__message" [id]="messageId">{{ message() }}</p>
      <div class="dialog__actions">
        <button #cancelButton type="button" class="btn" (click)="cancelled.emit()">
          {{ cancelLabel() }}
        </button>
        <button
          type="button"
          class="btn"
          [class.btn--danger]="danger()"
          [class.btn--primary]="!danger()"
          (click)="confirmed.emit()"
        >
          {{ confirmLabel() }}
        </button>
      </div>
    </div>
  `,
})
export class ConfirmDialog implements AfterViewInit, OnDestroy {
  readonly title = input.required<string>();
  readonly message = input.required<string>();
  readonly confirmLabel = input('Confirm');
  readonly cancelLabel = input('Keep it');
  readonly danger = input(false);
  readonly confirmed = output();
  readonly cancelled = output();

  protected readonly titleId = `confirm-title-${++nextId}`;
  protected readonly messageId = `confirm-message-${nextId}`;
  private readonly panel = viewChild.required<ElementRef<HTMLElement>>('panel');
  private readonly cancelButton = viewChild.required<ElementRef<HTMLButtonElement>>('cancelButton');
  private readonly previousFocus =
    typeof document === 'undefined' ? null : (document.activeElement as HTMLElement | null);

  ngAfterViewInit(): void {
    this.cancelButton().nativeElement.focus();
  }

  ngOnDestroy(): void {
    this.previousFocus?.focus?.();
  }

  protected onKeydown(event: KeyboardEvent): void {
    if (event.key === 'Escape') {
      event.preventDefault();
      this.cancelled.emit();
      return;
    }
    if (event.key !== 'Tab') {
      return;
    }
    const buttons = Array.from(this.panel().nativeElement.querySelectorAll('button'));
    const first = buttons[0];
    const last = buttons[buttons.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }
}
