import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestOf, goString, isStowageError } from '@stowage/oci';
import { pushImage, randomImage } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import { refusalCode, tempRoots } from '../test/temp-roots.js';
import { createImageStore } from './image-store.js';
import { bigDataFileName, formatImagesJson, parseImageName, parseImagesJson } from './records.js';

const freshRoot = tempRoots('stowage-records-');

const code = refusalCode;

/** images.json written by Debian's containers-storage 1.43 (spec B.12), byte for byte. */
const B12 =
  '[{"id":"fbc64c700f62fdd7a214d815f8cc920430f356e7bf96a0440baf7940397b6604","digest":"sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268","names":["example.com/app:v1","example.com/app:latest","example.com/app:v2"],"names-history":["example.com/app:v2","example.com/app:latest","example.com/app:v1"],"layer":"7c79c12e0efa97fd0e5cc3ad072dd24728c19663bc0ce17e44986800762595f4","metadata":"{\\"note\\":\\"a\\u003cb\\u0026c\\"}","big-data-names":["manifest-sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268","manifest","sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"],"big-data-sizes":{"manifest":246,"manifest-sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268":246,"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a":2},"big-data-digests":{"manifest":"sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268","manifest-sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268":"sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268","sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"created":"2026-11-22T10:20:33.082963738Z"},{"id":"bed8025db1e89a64a03a99fa8b4f3fe8abe4d51b86b1ec61084ecf0cc0521424","created":"2026-11-22T10:20:33.109327307Z"}]';

describe('containers/storage formats', () => {
  it('reads and rewrites a real images.json byte for byte', () => {
    const records = parseImagesJson(B12);
    expect(records).toHaveLength(2);
    expect(records[0]?.metadata).toBe('{"note":"a<b&c"}');
    expect(records[0]?.digests).toEqual([
      'sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268',
    ]);
    expect(formatImagesJson(records)).toBe(B12);
    expect(parseImagesJson('')).toEqual([]);
    expect(formatImagesJson([])).toBe('[]');
  });

  it('refuses what is not an images.json with a typed error', () => {
    for (const bad of ['{', '{}', '[1]', '[{"id":"x","digest":"sha256:short"}]']) {
      let caught: unknown;
      try {
        parseImagesJson(bad);
      } catch (error) {
        caught = error;
      }
      expect(isStowageError(caught), bad).toBe(true);
    }
  });

  it('names big-data files as containers/storage does', () => {
    expect(bigDataFileName('manifest')).toBe('manifest');
    expect(bigDataFileName('conF')).toBe('conF');
    expect(bigDataFileName('sig-')).toBe('sig-');
    expect(bigDataFileName('abé')).toBe('abé');
    expect(bigDataFileName('Conf')).toBe('=Q29uZg==');
    expect(bigDataFileName('key é')).toBe('=a2V5IMOp');
    expect(bigDataFileName('sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a')).toBe(
      '=c2hhMjU2OjQ0MTM2ZmEzNTViMzY3OGExMTQ2YWQxNmY3ZTg2NDllOTRmYjRmYzIxZmU3N2U4MzEwYzA2MGY2MWNhYWZmOGE=',
    );
    // never a path: where containers/storage would write `..` or `a/`, the key is encoded
    for (const key of ['.', '..', 'ab/', '\u00ff?']) {
      expect(bigDataFileName(key)).toMatch(/^=[A-Za-z0-9+_=]+$/);
    }
  });

  it('escapes strings as Go does', () => {
    expect(goString('a<b>&c\u2028\u2029')).toBe('"a\\u003cb\\u003e\\u0026c\\u2028\\u2029"');
    expect(goString('\b\f\n\r\t"\\\u0001')).toBe('"\\u0008\\u000c\\n\\r\\t\\"\\\\\\u0001"');
    expect(goString('\ud800x')).toBe('"\\ufffdx"');
    expect(goString('😀')).toBe('"😀"');
  });

  it('parses image names as repository:tag', () => {
    expect(parseImageName('example.com/app:v1')).toEqual({ repository: 'example.com/app', tag: 'v1' });
    for (const bad of ['app', 'App:v1', 'localhost:5000/app', 'app:', ':v1', 'a/../b:v1', 'app:v1/x']) {
      expect(() => parseImageName(bad), bad).toThrow(/repository:tag/);
    }
  });
});

describe('image records', () => {
  it('creates records with random or given IDs and refuses duplicates', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    const a = await store.images.create({ names: ['app:v1'] });
    expect(a.id).toMatch(/^[a-f0-9]{64}$/);
    expect(a.id.slice(0, 12)).not.toMatch(/^[0-9]{12}$/);
    expect(a.names).toEqual(['app:v1']);
    expect(a.namesHistory).toEqual([]);
    expect(a.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    const b = await store.images.create({ id: 'custom-id', metadata: 'm' });
    expect(b.id).toBe('custom-id');
    expect(await code(store.images.create({ id: 'custom-id' }))).toBe('DUPLICATE_ID');
    expect(await code(store.images.create({ names: ['app:v2', 'app:v1'] }))).toBe('DUPLICATE_NAME');
    expect(await code(store.images.create({ names: ['Bad Name'] }))).toBe('INVALID_NAME');
    expect(await code(store.images.create({ id: '../escape' }))).toBe('INVALID_ID');
    expect(await code(store.images.create({ digest: 'sha256:nothex' }))).toBe('INVALID_DIGEST');
    expect((await store.images.list()).map((r) => r.id).sort()).toEqual([a.id, 'custom-id'].sort());
    await store.close();
  });

  it('looks up by ID, by name and by unique ID prefix', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    await store.images.create({ id: 'abc111', names: ['app:one'] });
    await store.images.create({ id: 'abc222' });
    await store.images.create({ id: 'abd', names: ['abc1:x'] });
    expect((await store.images.get('abc111')).id).toBe('abc111');
    expect((await store.images.get('app:one')).id).toBe('abc111');
    expect((await store.images.get('abc2')).id).toBe('abc222');
    expect((await store.images.get('abd')).id).toBe('abd');
    expect(await code(store.images.get('abc'))).toBe('IMAGE_UNKNOWN'); // ambiguous
    expect(await code(store.images.get('zzz'))).toBe('IMAGE_UNKNOWN');
    expect(await code(store.images.get(''))).toBe('IMAGE_UNKNOWN');
    expect(await store.images.exists('abc1')).toBe(true);
    expect(await store.images.exists('nope')).toBe(false);
    await store.close();
  });

  it('adds, sets and removes names, keeping the names history', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    const image = await store.images.create({ id: 'one', names: ['app:v1'] });
    const set = await store.images.setNames(image.id, ['app:v1', 'app:latest', 'app:v2']);
    expect(set.names).toEqual(['app:v1', 'app:latest', 'app:v2']);
    expect(set.namesHistory).toEqual(['app:v2', 'app:latest', 'app:v1']);
    const added = await store.images.addNames(image.id, ['app:v3', 'app:v1']);
    expect(added.names).toEqual(['app:v3', 'app:v1', 'app:latest', 'app:v2']);
    const removed = await store.images.removeNames(image.id, ['app:latest']);
    expect(removed.names).toEqual(['app:v3', 'app:v1', 'app:v2']);
    expect(removed.namesHistory).toContain('app:latest');
    // a name taken by another image moves without an error
    const other = await store.images.create({ id: 'two' });
    await store.images.addNames('two', ['app:v1']);
    expect((await store.images.get('one')).names).toEqual(['app:v3', 'app:v2']);
    expect((await store.images.get('app:v1')).id).toBe(other.id);
    expect(await code(store.images.addNames('two', ['NOPE']))).toBe('INVALID_NAME');
    await store.close();
  });

  it('keeps big data, derives the image digests from manifest items, finds images by digest', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    const image = await store.images.create({ id: 'img' });
    expect(image.digest).toBeUndefined();
    const manifest = '{"schemaVersion":2}';
    const manifestDigest = digestOf(manifest);
    await store.images.setBigData('img', { key: `manifest-${manifestDigest}`, data: manifest });
    await store.images.setBigData('img', { key: 'manifest', data: manifest });
    const config = new Uint8Array([123, 125]);
    const after = await store.images.setBigData('img', { key: digestOf(config), data: config });
    expect(after.digest).toBe(manifestDigest);
    expect(after.digests).toEqual([manifestDigest]);
    expect(after.bigDataNames).toEqual([`manifest-${manifestDigest}`, 'manifest', digestOf(config)]);
    expect(await store.images.bigDataSize('img', digestOf(config))).toBe(2);
    expect(await store.images.bigDataDigest('img', digestOf(config))).toBe(digestOf(config));
    expect(new TextDecoder().decode(await store.images.getBigData('img', 'manifest'))).toBe(manifest);
    expect((await store.images.byDigest(manifestDigest)).map((r) => r.id)).toEqual(['img']);
    expect(await code(store.images.byDigest(digestOf('other')))).toBe('IMAGE_UNKNOWN');
    // the primary digest sticks; a second manifest only adds to digests
    const second = '{"schemaVersion":2,"x":1}';
    const more = await store.images.setBigData('img', { key: `manifest-${digestOf(second)}`, data: second });
    expect(more.digest).toBe(manifestDigest);
    expect(more.digests).toEqual([manifestDigest, digestOf(second)]);
    // a custom manifest digest function
    const custom = await store.images.setBigData('img', {
      key: 'manifest-x',
      data: 'abc',
      digestManifest: () => `sha512:${'0'.repeat(128)}`,
    });
    expect(custom.digests).toContain(`sha512:${'0'.repeat(128)}`);
    expect(await code(store.images.setBigData('img', { key: '', data: 'x' }))).toBe('INVALID_BIG_DATA_NAME');
    expect(await code(store.images.getBigData('img', ''))).toBe('INVALID_BIG_DATA_NAME');
    expect(await code(store.images.getBigData('img', 'missing'))).toBe('BIG_DATA_UNKNOWN');
    expect(await code(store.images.bigDataSize('img', 'missing'))).toBe('SIZE_UNKNOWN');
    expect(await code(store.images.bigDataDigest('img', 'missing'))).toBe('DIGEST_UNKNOWN');
    expect(await code(store.images.getBigData('nope', 'manifest'))).toBe('IMAGE_UNKNOWN');
    await store.close();
  });

  it('sets and clears flags and metadata, and deletes records with their data', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    await store.images.create({ id: 'img', names: ['app:v1'], bigData: [{ key: 'k', data: 'v' }] });
    expect((await store.images.setFlag('img', 'pinned', { by: 'me' })).flags).toEqual({
      pinned: { by: 'me' },
    });
    expect((await store.images.clearFlag('img', 'pinned')).flags).toEqual({});
    expect((await store.images.setMetadata('img', '{"a":1}')).metadata).toBe('{"a":1}');
    await store.images.delete('app:v1');
    expect(await store.images.exists('img')).toBe(false);
    expect(await code(store.images.delete('img'))).toBe('IMAGE_UNKNOWN');
    expect(await readdir(join(root, '.stowage/images'))).toEqual([]);
    // a new record may take the name again
    await store.images.create({ names: ['app:v1'] });
    await store.close();
  });

  it('writes images.json exactly as containers/storage would', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    await store.images.create({
      id: 'fbc64c700f62fdd7a214d815f8cc920430f356e7bf96a0440baf7940397b6604',
      names: ['example.com/app:v1', 'example.com/app:latest'],
      metadata: '{"note":"a<b&c"}',
      topLayer: '7c79c12e0efa97fd0e5cc3ad072dd24728c19663bc0ce17e44986800762595f4',
      created: '2026-11-22T10:20:33.082963738Z',
    });
    await store.images.create({ id: 'bed8', created: new Date(Date.UTC(2026, 10, 22, 10, 20, 33, 100)) });
    expect(await store.images.exportImagesJson()).toBe(
      '[{"id":"fbc64c700f62fdd7a214d815f8cc920430f356e7bf96a0440baf7940397b6604","names":["example.com/app:v1","example.com/app:latest"],"layer":"7c79c12e0efa97fd0e5cc3ad072dd24728c19663bc0ce17e44986800762595f4","metadata":"{\\"note\\":\\"a\\u003cb\\u0026c\\"}","created":"2026-11-22T10:20:33.082963738Z"},{"id":"bed8","created":"2026-11-22T10:20:33.1Z"}]',
    );
    await store.close();
  });

  it('refuses every write on a read-only store with a typed error', async () => {
    const root = await freshRoot();
    const writer = await createImageStore({ root });
    await writer.images.create({ id: 'img', names: ['app:v1'] });
    await writer.close();
    const store = await createImageStore({ root, readOnly: true });
    expect((await store.images.get('app:v1')).readOnly).toBe(true);
    const writes: Promise<unknown>[] = [
      store.images.create({}),
      store.images.addNames('img', ['app:v2']),
      store.images.setNames('img', []),
      store.images.removeNames('img', ['app:v1']),
      store.images.setMetadata('img', 'x'),
      store.images.setFlag('img', 'f', 1),
      store.images.clearFlag('img', 'f'),
      store.images.setBigData('img', { key: 'k', data: 'v' }),
      store.images.delete('img'),
      store.images.garbageCollect(),
    ];
    for (const write of writes) expect(await code(write)).toBe('STORE_READ_ONLY');
    await store.close();
  });

  it('repairs names claimed twice after a crash: the later record keeps it', async () => {
    const root = await freshRoot();
    const writer = await createImageStore({ root });
    await writer.images.create({ id: 'old', names: ['app:v1', 'app:keep'], created: '2026-01-01T00:00:00Z' });
    await writer.images.create({ id: 'new', created: '2026-01-02T00:00:00Z' });
    await writer.close();
    // what a crash between the two record writes of a name move leaves
    const path = join(root, '.stowage/images/new.json');
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace('"created"', '"names":["app:v1"],"created"'));
    const readOnly = await createImageStore({ root, readOnly: true });
    expect(await code(readOnly.images.list())).toBe('DUPLICATE_IMAGE_NAMES');
    // not once only: a read-only store never serves a repair it could not save
    expect(await code(readOnly.images.list())).toBe('DUPLICATE_IMAGE_NAMES');
    expect(await code(readOnly.images.get('app:v1'))).toBe('DUPLICATE_IMAGE_NAMES');
    await readOnly.close();
    const store = await createImageStore({ root });
    expect((await store.images.get('app:v1')).id).toBe('new');
    expect((await store.images.get('old')).names).toEqual(['app:keep']);
    await store.close();
    // the repair was saved
    expect(JSON.parse(await readFile(join(root, '.stowage/images/old.json'), 'utf8')).names).toEqual([
      'app:keep',
    ]);
  });

  it('treats an empty ID as none, refuses empty big-data names, and takes any flag or item name', async () => {
    const store = await createImageStore({ root: await freshRoot() });
    const record = await store.images.create({ id: '' });
    expect(record.id).toMatch(/^[0-9a-f]{64}$/);
    for (const call of [
      store.images.bigDataSize(record.id, ''),
      store.images.bigDataDigest(record.id, ''),
      store.images.getBigData(record.id, ''),
      store.images.setBigData(record.id, { key: '', data: 'x' }),
    ]) {
      expect(await code(call)).toBe('INVALID_BIG_DATA_NAME');
    }
    // names that are also properties of every object are plain names here
    expect(await code(store.images.bigDataSize(record.id, 'constructor'))).toBe('SIZE_UNKNOWN');
    expect(await code(store.images.bigDataDigest(record.id, 'toString'))).toBe('DIGEST_UNKNOWN');
    await store.images.setFlag(record.id, '__proto__', 'kept');
    await store.images.setBigData(record.id, { key: '__proto__', data: 'abc' });
    const again = await createImageStore({ root: store.root });
    expect((await again.images.get(record.id)).flags).toEqual({ ['__proto__']: 'kept' });
    expect(await again.images.bigDataSize(record.id, '__proto__')).toBe(3);
    expect(await again.images.bigDataNames(record.id)).toEqual(['__proto__']);
    await again.close();
    await store.close();
  });

  it('keeps concurrent writes of one big-data item consistent with the recorded size and digest', async () => {
    const root = await freshRoot();
    const a = await createImageStore({ root });
    const b = await createImageStore({ root });
    const record = await a.images.create({});
    const values = Array.from({ length: 20 }, (_, i) => 'x'.repeat(i + 1));
    await Promise.all(
      values.map((v, i) => (i % 2 ? a : b).images.setBigData(record.id, { key: 'item', data: v })),
    );
    const bytes = await a.images.getBigData(record.id, 'item');
    expect(await a.images.bigDataSize(record.id, 'item')).toBe(bytes.byteLength);
    expect(await a.images.bigDataDigest(record.id, 'item')).toBe(digestOf(bytes));
    await a.close();
    await b.close();
  });

  it('sees writes made through another handle on the same root (change token)', async () => {
    const root = await freshRoot();
    const a = await createImageStore({ root });
    const b = await createImageStore({ root });
    expect(await b.images.list()).toEqual([]);
    await a.images.create({ id: 'x', names: ['app:v1'] });
    expect((await b.images.get('app:v1')).id).toBe('x');
    await b.images.setNames('x', ['app:v2']);
    expect((await a.images.get('x')).names).toEqual(['app:v2']);
    await b.images.delete('x');
    expect(await a.images.exists('x')).toBe(false);
    const token = await a.images.changeToken();
    expect(token.byteLength).toBe(64);
    expect(Buffer.from(token).readUInt32LE(16)).toBe(process.pid);
    await a.close();
    await b.close();
  });

  it('is one view with the registry: a record name is the tag of its manifest', async () => {
    const store = await createImageStore({ root: await freshRoot(), indexFlushDelayMs: 1 });
    const image = randomImage();
    const digest = await pushImage(store, 'app', image);
    expect((await store.listTags('app')).items).toEqual([]);
    const record = await store.images.create({ id: 'img', digest, names: ['app:v1'] });
    expect(record.digest).toBe(digest);
    expect((await store.getManifest('app', 'v1')).digest).toBe(digest);
    // a record without a manifest in that repository has the name but publishes no tag
    await store.images.create({ id: 'bare', names: ['app:bare'] });
    expect((await store.listTags('app')).items).toEqual(['v1']);
    // moving the name to a record with no manifest there untags it
    await store.images.addNames('bare', ['app:v1']);
    expect(await store.headManifest('app', 'v1')).toBeUndefined();
    await store.images.addNames('img', ['app:v1', 'app:v2']);
    expect((await store.listTags('app')).items).toEqual(['v1', 'v2']);
    await store.images.removeNames('img', ['app:v2']);
    expect((await store.listTags('app')).items).toEqual(['v1']);
    await store.images.delete('img');
    expect((await store.listTags('app')).items).toEqual([]);
    await store.close();
  });

  it('collects data directories no record owns', async () => {
    const root = await freshRoot();
    const store = await createImageStore({ root });
    await store.images.create({ id: 'kept', bigData: [{ key: 'k', data: 'v' }] });
    const orphan = join(root, '.stowage/images', 'f'.repeat(64));
    await mkdir(orphan, { recursive: true });
    await writeFile(join(orphan, 'manifest'), 'x');
    expect((await store.garbageCollect({ dryRun: true })).recordDataRemoved).toEqual(['f'.repeat(64)]);
    expect((await store.garbageCollect()).recordDataRemoved).toEqual(['f'.repeat(64)]);
    expect((await readdir(join(root, '.stowage/images'))).sort()).toEqual(['kept', 'kept.json']);
    await store.close();
  });
});
