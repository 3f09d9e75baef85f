import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { Role, SessionUser } from '../app/api/auth.model';
import { AuthService } from '../app/core/auth.service';

/** Sign in for a test: AuthService learns the user from a (faked) GET /api/v1/auth/session. */
export function signInAs(username = 'alice', role: Role = 'user'): SessionUser {
  const user: SessionUser = { username, role };
  TestBed.inject(AuthService).session().subscribe();
  TestBed.inject(HttpTestingController)
    .expectOne('/api/v1/auth/session')
    .flush({ signed_in: true, via: 'session', ...user });
  return user;
}
