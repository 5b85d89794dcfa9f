import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImageInfo } from '@stowage/stages-storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveWerfHome } from './home.js';
import type { LockHandle, LockManager } from './locks/index.js';
import { LruImagesCache } from './lru-cache.js';
import { ManifestCache } from './manifest-cache.js';

// Spec A.13 example 1 and 8.
const REPO = 'registry.example.com/group/project';
const TAG = '7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7-1700000000123';
const IMAGE = `${REPO}:${TAG}`;
const SHA_OF_IMAGE = '599ef33078c7ea83d8e9a7af575eabf3d5406d1853b43f66418fc7d991ec330f';
const LOCAL_IMAGE = `myproject:${TAG}`;
const SHA_OF_LOCAL_IMAGE = '5260630aa30af00a09e66c5b680c8cf2efd53025aa9f204686cbd9bce07fdec0';

const info: ImageInfo = {
  name: IMAGE,
  repository: REPO,
  tag: TAG,
  repoDigest: `${REPO}@sha256:${'a'.repeat(64)}`,
  onBuild: null,
  env: ['PATH=/usr/bin'],
  id: `sha256:${'b'.repeat(64)}`,
  parentId: '',
  labels: { 'werf-stage-content-digest': 'c1', werf: 'myproj', note: 'a&b<c>' },
  size: 1234,
  createdAtUnixNano: 1_700_000_000_000_000_000,
  volumes: null,
  isIndex: false,
  index: null,
};

// Go's json.Marshal of werf's record: struct fields in order, map keys sorted, <>& escaped.
const expectedRecord = (accessTimestamp: number): string =>
  `{"AccessTimestamp":${accessTimestamp},"Info":{"name":"${IMAGE}","repository":"${REPO}","tag":"${TAG}",` +
  `"repoDigest":"${REPO}@sha256:${'a'.repeat(64)}","onBuild":null,"env":["PATH=/usr/bin"],` +
  `"ID":"sha256:${'b'.repeat(64)}","parentID":"",` +
  `"labels":{"note":"a\\u0026b\\u003cc\\u003e","werf":"myproj","werf-stage-content-digest":"c1"},` +
  `"size":1234,"createdAtUnixNano":1700000000000000000,"volumes":null,"IsIndex":false,"Index":null}}\n`;

class RecordingLocks implements LockManager {
  readonly description = 'recording';
  readonly taken: string[] = [];
  held = 0;
  async acquire(name: string, options?: { shared?: boolean }): Promise<LockHandle> {
    this.taken.push(name);
    this.held++;
    let released = false;
    const release = async () => {
      if (!released) this.held--;
      released = true;
    };
    return { name, shared: options?.shared === true, release, [Symbol.asyncDispose]: release };
  }
  async close(): Promise<void> {}
}

let home: string;
let now: number;
const clock = { now: () => now };

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'stowage-werf-home-'));
  now = 1_700_000_000_500;
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('werf home', () => {
  it('lays the caches out as werf does', () => {
    const h = resolveWerfHome('/h');
    expect(h.manifestCache).toBe('/h/local_cache/manifests/5');
    expect(h.lruImages).toBe('/h/local_cache/lru_images/1');
    expect(h.locks).toBe('/h/service/locks');
  });
});

describe('ManifestCache', () => {
  it('writes the path of spec A.13 example 8 and the bytes of Go json.Marshal, mode 0644', async () => {
    const cache = new ManifestCache({ directory: resolveWerfHome(home).manifestCache, clock });
    await cache.put(REPO, info);
    const path = join(home, 'local_cache/manifests/5/registry-example-com-group-project', SHA_OF_IMAGE);
    expect(cache.path(REPO, IMAGE)).toBe(path);
    expect(await readFile(path, 'utf8')).toBe(expectedRecord(1_700_000_000));
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    // no temporary file is left beside it
    expect(await readdir(join(home, 'local_cache/manifests/5/registry-example-com-group-project'))).toEqual([
      SHA_OF_IMAGE,
    ]);
  });

  it('puts the local storage under "local" (":local" slugified)', async () => {
    const cache = new ManifestCache({ directory: resolveWerfHome(home).manifestCache, clock });
    await cache.put(':local', { ...info, name: LOCAL_IMAGE, repository: 'myproject' });
    const path = join(home, 'local_cache/manifests/5/local', SHA_OF_LOCAL_IMAGE);
    expect(cache.path(':local', LOCAL_IMAGE)).toBe(path);
    expect(JSON.parse(await readFile(path, 'utf8')).Info.name).toBe(LOCAL_IMAGE);
  });

  it('reads an entry back and rewrites it with a fresh AccessTimestamp', async () => {
    const cache = new ManifestCache({ directory: resolveWerfHome(home).manifestCache, clock });
    await cache.put(REPO, info);
    now += 42_000;
    expect(await cache.get(REPO, IMAGE)).toEqual(info);
    expect(await readFile(cache.path(REPO, IMAGE), 'utf8')).toBe(expectedRecord(1_700_000_042));
  });

  it('reads what werf wrote (keys werf v2.0 left out) and misses on an absent entry', async () => {
    const cache = new ManifestCache({ directory: resolveWerfHome(home).manifestCache, clock });
    expect(await cache.get(REPO, IMAGE)).toBeNull();
    await cache.put(REPO, info);
    const old = JSON.parse(await readFile(cache.path(REPO, IMAGE), 'utf8'));
    delete old.Info.volumes;
    delete old.Info.Index;
    await writeFile(cache.path(REPO, IMAGE), `${JSON.stringify(old)}\n`);
    expect(await cache.get(REPO, IMAGE)).toEqual(info);
  });

  it('treats invalid JSON as a miss, and the next put overwrites it', async () => {
    const cache = new ManifestCache({ directory: resolveWerfHome(home).manifestCache, clock });
    await cache.put(REPO, info);
    await writeFile(cache.path(REPO, IMAGE), '{"AccessTimestamp":1,"Info":{"name":');
    expect(await cache.get(REPO, IMAGE)).toBeNull();
    await writeFile(cache.path(REPO, IMAGE), '{"AccessTimestamp":1,"Info":{"size":"big"}}');
    expect(await cache.get(REPO, IMAGE)).toBeNull();
    await cache.put(REPO, info);
    expect(await readFile(cache.path(REPO, IMAGE), 'utf8')).toBe(expectedRecord(1_700_000_000));
  });

  it("takes werf's lock name for the entry and releases it", async () => {
    const locks = new RecordingLocks();
    const cache = new ManifestCache({ directory: resolveWerfHome(home).manifestCache, clock, locks });
    await cache.put(REPO, info);
    await cache.get(REPO, IMAGE);
    expect(locks.taken).toEqual([
      `manifest_cache.registry-example-com-group-project.${IMAGE}`,
      `manifest_cache.registry-example-com-group-project.${IMAGE}`,
    ]);
    expect(locks.held).toBe(0);
  });
});

describe('LruImagesCache', () => {
  it('writes the path of spec A.13 example 8 and the exact nanoseconds', async () => {
    const lru = new LruImagesCache({
      directory: resolveWerfHome(home).lruImages,
      clock: { now: () => 0, nowNs: () => 1_700_000_000_123_456_789n },
    });
    await lru.accessImage(IMAGE);
    const path = join(home, 'local_cache/lru_images/1', SHA_OF_IMAGE);
    expect(lru.path(IMAGE)).toBe(path);
    expect(await readFile(path, 'utf8')).toBe(
      `{"AccessTimestampNanosec":1700000000123456789,"ImageRef":"${IMAGE}"}\n`,
    );
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect(await lru.lastAccess(IMAGE)).toEqual({
      imageRef: IMAGE,
      accessTimestampNanosec: 1_700_000_000_123_456_789n,
    });
  });

  it('takes ms from a plain clock, rewrites on each access, and locks lru_images_cache.<ref>', async () => {
    const locks = new RecordingLocks();
    const lru = new LruImagesCache({ directory: resolveWerfHome(home).lruImages, clock, locks });
    await lru.accessImage(IMAGE);
    now += 1;
    await lru.accessImage(IMAGE);
    expect(await readFile(lru.path(IMAGE), 'utf8')).toBe(
      `{"AccessTimestampNanosec":1700000000501000000,"ImageRef":"${IMAGE}"}\n`,
    );
    expect(locks.taken).toEqual([`lru_images_cache.${IMAGE}`, `lru_images_cache.${IMAGE}`]);
    expect(locks.held).toBe(0);
    expect(await lru.lastAccess('absent:ref')).toBeNull();
  });
});
