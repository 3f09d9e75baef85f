import { TestBed } from '@angular/core/testing';

import { USER_STORAGE_KEY, UserService } from './user.service';

describe('UserService', () => {
  beforeEach(() => localStorage.clear());

  it('starts empty, then remembers the chosen id in localStorage', () => {
    const users = TestBed.inject(UserService);
    expect(users.userId()).toBe('');
    expect(users.setUserId('  alice ')).toBe(true);
    expect(users.userId()).toBe('alice');
    expect(localStorage.getItem(USER_STORAGE_KEY)).toBe('alice');
  });

  it('reads the remembered id on start', () => {
    localStorage.setItem(USER_STORAGE_KEY, 'bob');
    expect(TestBed.inject(UserService).userId()).toBe('bob');
  });

  it('refuses ids the API would refuse', () => {
    const users = TestBed.inject(UserService);
    for (const bad of ['', 'two words', 'a/b', 'a?b', 'x'.repeat(129)]) {
      expect(users.setUserId(bad)).toBe(false);
    }
    expect(users.userId()).toBe('');
  });
});
