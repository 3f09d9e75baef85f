import { provideHttpClient } from '@angular/common/http';
import {
  HttpTestingController,
  TestRequest,
  provideHttpClientTesting,
} from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter } from '@angular/router';
import { RouterTestingHarness } from '@angular/router/testing';

import { signInAs } from '../../testing/auth';
import { text } from '../../testing/dom';
import { routes } from '../app.routes';

const SESSION = '/api/v1/auth/session';
const STATS = '/api/v1/stats';

/** /overview with the app's own routes: admins get the overview, anyone else is told. */
describe('adminGuard on /overview', () => {
  let http: HttpTestingController;
  let harness: RouterTestingHarness;

  /** A request sent once the (lazy) navigation has got that far. */
  async function pending(url: string): Promise<TestRequest> {
    for (let tick = 0; tick < 100; tick++) {
      const [request] = http.match(url);
      if (request) {
        return request;
      }
      await new Promise((resolve) => setTimeout(resolve));
    }
    throw new Error(`no request to ${url}`);
  }

  beforeEach(async () => {
    // jsdom has no canvas: the charts have nothing to draw on (and say so quietly).
    vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockReturnValue(null);
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter(routes)],
    });
    http = TestBed.inject(HttpTestingController);
    harness = await RouterTestingHarness.create();
  });

  afterEach(() => {
    http.verify();
    vi.restoreAllMocks();
  });

  it('shows an admin the overview, with its figures', async () => {
    signInAs('root', 'admin');
    await harness.navigateByUrl('/overview');
    (await pending(STATS)).flush({
      generated_at: new Date().toISOString(),
      minutes: [],
      queues: [],
      tasks: [],
      workers: { online: 2, busy: 1, idle: 1 },
      recent_failures: [],
    });
    await harness.fixture.whenStable();
    const root = harness.routeNativeElement as HTMLElement;
    expect(text(root, 'h1')).toBe('Overview');
    const tiles = Array.from(root.querySelectorAll('[data-testid="workers"] .tile')).map(
      (tile) => `${text(tile, 'dt')}: ${text(tile, 'dd')}`,
    );
    expect(tiles).toEqual(['Online: 2', 'Busy: 1', 'Idle: 1']);
    expect(TestBed.inject(Router).url).toBe('/overview');
  });

  it('tells a user who is not an admin, without asking for the stats', async () => {
    signInAs('alice', 'user');
    await harness.navigateByUrl('/overview');
    await harness.fixture.whenStable();
    const root = harness.routeNativeElement as HTMLElement;
    expect(text(root, 'h1')).toBe('Admins only');
    expect(text(root, '[data-testid="admins-only"]')).toContain('for admins');
    expect(TestBed.inject(Router).url).toBe('/overview');
    http.expectNone(STATS);
  });

  it('sends a signed-out visitor to sign in, coming back to the overview', async () => {
    const done = TestBed.inject(Router).navigateByUrl('/overview');
    // adminGuard asks, then the "admins only" route's signedInGuard, then sign-in's own.
    for (let asked = 0; asked < 3; asked++) {
      (await pending(SESSION)).flush({ signed_in: false });
    }
    await done;
    expect(TestBed.inject(Router).url).toBe('/sign-in?returnUrl=%2Foverview');
    http.expectNone(STATS);
  });
});
