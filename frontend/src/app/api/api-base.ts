import { InjectionToken } from '@angular/core';

/**
 * Where the kernel's API lives. Relative on purpose: `ng serve` proxies /api to the
 * kernel, and in production the kernel serves this app itself.
 */
export const API_BASE = new InjectionToken<string>('API_BASE', {
  providedIn: 'root',
  factory: () => '/api/v1',
});
