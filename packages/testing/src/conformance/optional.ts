import { pushImage, randomBlob, randomImage } from '../random.js';
import { type Conformance, codeOf } from './suite.js';

/** The optional members: garbage collection and locks, present exactly when claimed. */
export function optionalCases(c: Conformance): void {
  const { describe, expect, test, registry, repo, unique } = c;
  describe('optional capabilities', () => {
    test(
      'garbage collection removes unreferenced blobs and keeps referenced ones',
      ['garbageCollect'],
      async () => {
        const r = registry();
        const name = repo();
        const image = randomImage();
        await pushImage(r, name, image, 'v1');
        const orphan = randomBlob(100);
        await r.putBlob(name, orphan.bytes, { digest: orphan.descriptor.digest });
        const dry = await r.garbageCollect!({ dryRun: true, gracePeriodMs: 0 });
        expect(dry.dryRun).toBe(true);
        expect(dry.blobsRemoved).toContain(orphan.descriptor.digest);
        expect(await r.headBlob(name, orphan.descriptor.digest)).toBeDefined();
        const report = await r.garbageCollect!({ gracePeriodMs: 0 });
        expect(report.blobsRemoved).toContain(orphan.descriptor.digest);
        expect(report.blobsRemoved).not.toContain(image.config.descriptor.digest);
        expect(await r.headBlob(name, orphan.descriptor.digest)).toBeUndefined();
        for (const blob of image.blobs) expect(await r.headBlob(name, blob.descriptor.digest)).toBeDefined();
        expect((await r.getManifest(name, 'v1')).digest).toBe(image.manifest.digest);
      },
    );

    test('garbage collection spares blobs younger than the grace period', ['garbageCollect'], async () => {
      const r = registry();
      const name = repo();
      const fresh = randomBlob(100);
      await r.putBlob(name, fresh.bytes, { digest: fresh.descriptor.digest });
      const report = await r.garbageCollect!({ gracePeriodMs: 60 * 60 * 1000 });
      expect(report.blobsRemoved).not.toContain(fresh.descriptor.digest);
      expect(await r.headBlob(name, fresh.descriptor.digest)).toBeDefined();
    });

    test('an exclusive lock excludes a second holder until released', ['lock'], async () => {
      const r = registry();
      const name = unique('lock');
      const first = await r.lock!(name);
      let secondHeld = false;
      const second = r.lock!(name).then((lock) => {
        secondHeld = true;
        return lock;
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(secondHeld).toBe(false);
      await first.release();
      const lock = await second;
      expect(secondHeld).toBe(true);
      await lock.release();
    });
    test(
      'a store without garbage collection has no garbageCollect, or refuses it',
      ['!garbageCollect'],
      async () => {
        const r = registry();
        if (r.garbageCollect === undefined) return;
        expect(await codeOf(r.garbageCollect({ dryRun: true }))).toBe('UNSUPPORTED');
      },
    );

    test('a store without locks has no lock, or refuses it', ['!lock'], async () => {
      const r = registry();
      if (r.lock === undefined) return;
      expect(await codeOf(r.lock(unique('lock')))).toBe('UNSUPPORTED');
    });
  });
}
