import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isStowageError } from '@stowage/oci';
import bcrypt from 'bcryptjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createBcryptPool } from './bcrypt-pool.js';
import { createHtpasswdAuthorizer, type HtpasswdAuthorizer } from './htpasswd.js';
import type { Access, AuthDecision } from './types.js';

const run = promisify(execFile);
const pull = (name: string): Access[] => [{ type: 'repository', name, actions: ['pull'] }];
const push = (name: string): Access[] => [{ type: 'repository', name, actions: ['pull', 'push'] }];
const basic = (user: string, password: string) => ({
  headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
});
const raw = (authorization: string) => ({ headers: { authorization } });
const none = { headers: {} };

const alice = bcrypt.hashSync('secret', 4);
const bob = bcrypt.hashSync('hunter2', 4);
const tooMany = {
  ok: false,
  status: 429,
  code: 'TOOMANYREQUESTS',
  retryAfterMs: 1000,
} as const;
const wrong = {
  ok: false,
  status: 401,
  code: 'UNAUTHORIZED',
  message: 'invalid username or password',
} as const;

const open: HtpasswdAuthorizer[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const authorizer of open.splice(0)) await authorizer.close();
});
function authorizer(options: Partial<Parameters<typeof createHtpasswdAuthorizer>[0]> = {}) {
  const made = createHtpasswdAuthorizer({
    realm: 'stowage',
    users: new Map([
      ['alice', alice],
      ['bob', bob],
    ]),
    ...options,
  });
  open.push(made);
  return made;
}

describe('htpasswd verification in worker threads', () => {
  it('keeps the event loop turning while 50 verifications run', async () => {
    const slow = bcrypt.hashSync('secret', 7);
    const auth = authorizer({ users: new Map([['alice', slow]]), workers: 2, maxQueued: 100 });
    // A 0 ms timer re-armed on every firing: on the event loop, bcrypt would hold it back
    // until a whole batch of comparisons is done; off the loop it fires all along.
    let ticks = 0;
    let finished = false;
    const tick = () => {
      ticks++;
      if (!finished) setTimeout(tick, 0);
    };
    setTimeout(tick, 0);
    const decisions = await Promise.all(
      Array.from({ length: 50 }, (_, i) => auth.authorize(basic('alice', `guess-${i}`), push('app'))),
    );
    finished = true;
    expect(decisions.every((d) => !d.ok && d.status === 401)).toBe(true);
    // more timer turns than verifications: the loop turned while they ran, not between batches
    expect(ticks).toBeGreaterThan(50);
  });

  it('answers logins over the bound with 429 and Retry-After at once, and takes new ones when it drains', async () => {
    const auth = authorizer({ workers: 1, maxQueued: 2 });
    const decisions = await Promise.all(
      Array.from({ length: 10 }, (_, i) => auth.authorize(basic('alice', `guess-${i}`), push('app'))),
    );
    // one running, two waiting: the other seven are refused without being queued
    expect(decisions.filter((d) => !d.ok && d.status === 401)).toHaveLength(3);
    const refused = decisions.filter((d) => !d.ok && d.status === 429);
    expect(refused).toHaveLength(7);
    for (const decision of refused) expect(decision).toMatchObject(tooMany);
    expect(await auth.authorize(basic('alice', 'secret'), push('app'))).toEqual({
      ok: true,
      principal: { subject: 'alice' },
    });
  });

  it('serves a user who logged in before the pool filled, until the remembered login expires', async () => {
    const auth = authorizer({ workers: 1, maxQueued: 1, cacheTtlMs: 60_000 });
    expect((await auth.authorize(basic('alice', 'secret'), push('app'))).ok).toBe(true);
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });

    const flood = [auth.authorize(basic('mallory', 'a'), []), auth.authorize(basic('alice', 'b'), [])];
    // the pool is full now: a new login is refused, the remembered one is served without it
    expect(await auth.authorize(basic('bob', 'hunter2'), push('app'))).toMatchObject(tooMany);
    expect(await auth.authorize(basic('alice', 'secret'), push('app'))).toEqual({
      ok: true,
      principal: { subject: 'alice' },
    });
    // a wrong password for the same user is not served from the cache
    expect(await auth.authorize(basic('alice', 'secret2'), push('app'))).toMatchObject(tooMany);
    vi.advanceTimersByTime(60_001);
    expect(await auth.authorize(basic('alice', 'secret'), push('app'))).toMatchObject(tooMany);
    for (const decision of await Promise.all(flood)) expect(decision).toMatchObject(wrong);
  });

  it('remembers at most cacheSize logins, and none with cacheTtlMs 0', async () => {
    const small = authorizer({ workers: 1, maxQueued: 0, cacheSize: 1 });
    expect((await small.authorize(basic('alice', 'secret'), [])).ok).toBe(true);
    expect((await small.authorize(basic('bob', 'hunter2'), [])).ok).toBe(true); // alice is evicted
    const busy = small.authorize(basic('alice', 'guess'), []);
    expect((await small.authorize(basic('bob', 'hunter2'), [])).ok).toBe(true);
    expect(await small.authorize(basic('alice', 'secret'), [])).toMatchObject(tooMany);
    expect(await busy).toMatchObject(wrong);

    const uncached = authorizer({ workers: 1, maxQueued: 0, cacheTtlMs: 0 });
    expect((await uncached.authorize(basic('alice', 'secret'), [])).ok).toBe(true);
    const busy2 = uncached.authorize(basic('bob', 'guess'), []);
    expect(await uncached.authorize(basic('alice', 'secret'), [])).toMatchObject(tooMany);
    expect(await busy2).toMatchObject(wrong);
  });

  it('makes an unknown user pay a decoy verification in the pool, and never lets one in', async () => {
    const auth = authorizer({ workers: 1, maxQueued: 0 });
    // the decoy for an unknown user occupies the only slot, so a known user's login is refused...
    const unknown = auth.authorize(basic('mallory', 'x'), push('app'));
    expect(await auth.authorize(basic('alice', 'y'), push('app'))).toMatchObject(tooMany);
    expect(await unknown).toMatchObject(wrong);
    // ...and an unknown user is refused with 429 as well when the pool is full
    const known = auth.authorize(basic('alice', 'y'), push('app'));
    expect(await auth.authorize(basic('mallory', 'x'), push('app'))).toMatchObject(tooMany);
    expect(await known).toMatchObject(wrong);
    // the decoy is alice's hash: her password under another name still fails
    expect(await auth.authorize(basic('mallory', 'secret'), push('app'))).toMatchObject(wrong);
  });

  it('shares one verification between identical concurrent logins, even over the bound', async () => {
    const auth = authorizer({ workers: 1, maxQueued: 0 });
    const decisions = await Promise.all([
      ...Array.from({ length: 5 }, () => auth.authorize(basic('alice', 'guess'), [])),
      ...Array.from({ length: 5 }, () => auth.authorize(basic('mallory', 'guess'), [])),
    ]);
    // the first takes the only slot; its four twins join it; mallory's five find the pool full
    expect(decisions.slice(0, 5).every((d) => !d.ok && d.status === 401)).toBe(true);
    expect(decisions.slice(5).every((d) => !d.ok && d.status === 429)).toBe(true);
  });
});

describe('empty Basic credentials', () => {
  const rules = [{ repository: 'public/**', anonymous: ['pull'] }];

  it('are anonymous, exactly like no Authorization header (what skopeo --no-creds sends)', async () => {
    const auth = authorizer({ rules, workers: 1, maxQueued: 0 });
    // keep the pool busy: the anonymous decisions must not need it
    const busy = auth.authorize(basic('alice', 'guess'), []);
    for (const header of ['Basic Og==', 'basic Og==', 'Basic  Og', 'Basic Og== ']) {
      for (const access of [pull('public/app'), push('public/app'), pull('private'), []]) {
        const expected: AuthDecision = await auth.authorize(none, access);
        expect(await auth.authorize(raw(header), access), `${header} ${JSON.stringify(access)}`).toEqual(
          expected,
        );
      }
    }
    expect(await auth.authorize(raw('Basic Og=='), pull('public/app'))).toEqual({ ok: true, principal: {} });
    expect(await busy).toMatchObject(wrong);
  });

  it('with a password but no user stay malformed', async () => {
    const auth = authorizer({ rules });
    for (const request of [basic('', 'pass'), basic('', ':'), raw('Basic Og=!')]) {
      expect(await auth.authorize(request, pull('public/app'))).toMatchObject({
        ok: false,
        status: 401,
        code: 'UNAUTHORIZED',
        message: 'malformed credentials',
        challenge: 'Basic realm="stowage"',
      });
    }
  });
});

describe('the bcrypt pool', () => {
  it('compares in workers, bounds what is in flight, and fails what close() cuts off', async () => {
    const pool = createBcryptPool({ workers: 2, maxQueued: 1 });
    expect(pool.capacity).toBe(3);
    expect(await pool.tryCompare('secret', alice)).toBe(true);
    expect(await pool.tryCompare('secret', 'not a hash')).toBe(false);
    const first = [
      pool.tryCompare('a', alice),
      pool.tryCompare('secret', alice),
      pool.tryCompare('b', alice),
    ];
    expect(pool.inFlight).toBe(3);
    expect(pool.tryCompare('c', alice)).toBeUndefined();
    expect(await Promise.all(first)).toEqual([false, true, false]);
    expect(pool.inFlight).toBe(0);

    const cut = pool.tryCompare('secret', bcrypt.hashSync('secret', 10))?.then(
      () => undefined,
      (e: unknown) => e,
    );
    await pool.close();
    const error = await cut;
    expect(isStowageError(error, 'AUTH_WORKER_FAILED')).toBe(true);
    // a closed pool starts new workers when asked again
    expect(await pool.tryCompare('hunter2', bob)).toBe(true);
    await pool.close();
  });

  it('refuses a size that is not a positive integer', () => {
    expect(() => createBcryptPool({ workers: 0 })).toThrow(RangeError);
    expect(() => createBcryptPool({ workers: 1.5 })).toThrow(RangeError);
    expect(() => createBcryptPool({ maxQueued: -1 })).toThrow(RangeError);
  });

  it('lets a process exit without close(), and keeps it alive while a verification runs', async () => {
    // from source through tsx, as the server runs; the built dist is checked by hand (see the changeset)
    const source = join(import.meta.dirname, 'htpasswd.ts');
    const script = `
      import { createHtpasswdAuthorizer } from ${JSON.stringify(source)};
      const auth = createHtpasswdAuthorizer({ realm: 'r', users: 'alice:${alice}\\n' });
      const basic = 'Basic ' + Buffer.from('alice:secret').toString('base64');
      const decision = await auth.authorize({ headers: { authorization: basic } }, []);
      console.log('decision', JSON.stringify(decision));
    `;
    const { stdout } = await run(
      process.execPath,
      ['--conditions=@stowage/source', '--import', 'tsx', '--input-type=module', '-e', script],
      { timeout: 20_000 },
    );
    expect(stdout.trim()).toBe('decision {"ok":true,"principal":{"subject":"alice"}}');
  });
});

describe('htpasswd catalog filtering', () => {
  it('answers pullable by the rules, for users and anonymous alike, and refuses while it cannot verify', async () => {
    const slow = bcrypt.hashSync('hunter2', 8);
    const auth = authorizer({
      users: new Map([
        ['alice', alice],
        ['bob', slow],
      ]),
      workers: 1,
      maxQueued: 0,
      rules: [
        { repository: 'public/**', anonymous: ['pull'] },
        { repository: 'alice/**', users: { alice: ['pull'] } },
        { repository: '**', users: { bob: ['pull'] } },
      ],
    });
    const names = ['alice/app', 'bob/app', 'public/app'];
    expect(await auth.pullable?.(basic('alice', 'secret'), names)).toEqual(['alice/app', 'public/app']);
    expect(await auth.pullable?.(none, names)).toEqual(['public/app']);
    expect(await auth.pullable?.(raw('Basic Og=='), names)).toEqual(['public/app']);
    expect(await auth.pullable?.(basic('alice', 'wrong'), names)).toEqual([]);
    // bob's first login holds the only worker: nothing else can be verified now
    const bobs = auth.pullable?.(basic('bob', 'hunter2'), names);
    const refused = await auth.pullable?.(basic('alice', 'other'), names).catch((error: unknown) => error);
    expect(isStowageError(refused, 'TOOMANYREQUESTS')).toBe(true);
    expect(await bobs).toEqual(['bob/app', 'public/app']);
  });
});
