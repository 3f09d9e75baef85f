import { Injectable, signal } from '@angular/core';

const NOTICE_MS = 6000;

/** One short message for the shell to show after a navigation ("Job … deleted"). */
@Injectable({ providedIn: 'root' })
export class NoticeService {
  private readonly messageSignal = signal<string | null>(null);
  private timer: ReturnType<typeof setTimeout> | undefined;
  readonly message = this.messageSignal.asReadonly();

  show(message: string): void {
    this.messageSignal.set(message);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.dismiss(), NOTICE_MS);
  }

  dismiss(): void {
    clearTimeout(this.timer);
    this.messageSignal.set(null);
  }
}
