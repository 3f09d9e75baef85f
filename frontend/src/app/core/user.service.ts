import { Injectable, signal } from '@angular/core';

export const USER_STORAGE_KEY = 'taskbroker.userId';

/** Same rule as backend/jobs.py UserId: 1..128 characters, no whitespace, '/', '?' or '#'. */
export const USER_ID_PATTERN = /^[^\s/?#]{1,128}$/;

export function isValidUserId(value: string): boolean {
  return USER_ID_PATTERN.test(value);
}

function readStored(): string {
  try {
    const stored = globalThis.localStorage?.getItem(USER_STORAGE_KEY) ?? '';
    return isValidUserId(stored) ? stored : '';
  } catch {
    return ''; // storage disabled (privacy mode): the id lives for this tab only
  }
}

/**
 * Who the user is, until authentication lands: an id typed in the header,
 * remembered in localStorage.
 */
@Injectable({ providedIn: 'root' })
export class UserService {
  private readonly idSignal = signal(readStored());

  /** The current user id; '' until one is chosen. */
  readonly userId = this.idSignal.asReadonly();

  /** Choose a user id; returns false (and changes nothing) when it is not valid. */
  setUserId(value: string): boolean {
    const id = value.trim();
    if (!isValidUserId(id)) {
      return false;
    }
    this.idSignal.set(id);
    try {
      globalThis.localStorage?.setItem(USER_STORAGE_KEY, id);
    } catch {
      // storage disabled: keep the id in memory
    }
    return true;
  }
}
