import { fullCapabilities, hasUploadSessions } from '@stowage/oci';
import { pushImage, randomImage } from '../random.js';
import type { Conformance } from './suite.js';

const UPLOAD_MEMBERS = ['startUpload', 'appendUpload', 'getUpload', 'finishUpload', 'cancelUpload'] as const;

/** What the store says of itself: its capabilities and its origin, well formed and stable. */
export function capabilityCases(c: Conformance): void {
  const { declared, describe, expect, registry, repo, test } = c;
  describe('capabilities and origin', () => {
    test('capabilities() names every capability, each with the right type', [], async () => {
      const caps = declared() as unknown as Record<string, unknown>;
      for (const key of Object.keys(fullCapabilities)) {
        expect(Object.hasOwn(caps, key), `capability ${key} is declared`).toBe(true);
        if (key === 'referrers') expect(['api', 'tag-schema', 'none']).toContain(caps[key]);
        else expect(typeof caps[key], `capability ${key} is a boolean`).toBe('boolean');
      }
    });

    test('capabilities() answers the same on every call', [], async () => {
      const r = registry();
      await pushImage(r, repo(), randomImage(), 'v1');
      expect(await r.capabilities()).toEqual(declared());
      expect(await r.capabilities()).toEqual(declared());
    });

    test('capabilities agree with each other and with the members the store has', [], async () => {
      const r = registry();
      const caps = declared();
      if (caps.catalogPaging) expect(caps.catalog, 'catalogPaging without catalog').toBe(true);
      if (caps.uploadStatus) expect(caps.uploadSessions, 'uploadStatus without upload sessions').toBe(true);
      if (caps.outOfOrderChunkRefusal) {
        expect(caps.uploadSessions, 'outOfOrderChunkRefusal without upload sessions').toBe(true);
      }
      const present = UPLOAD_MEMBERS.filter(
        (member) => typeof (r as unknown as Record<string, unknown>)[member] === 'function',
      );
      expect([0, UPLOAD_MEMBERS.length], `upload-session members present: ${present.join(', ')}`).toContain(
        present.length,
      );
      expect(hasUploadSessions(r)).toBe(caps.uploadSessions);
      if (caps.lock) expect(typeof r.lock).toBe('function');
      if (caps.garbageCollect) expect(typeof r.garbageCollect).toBe('function');
    });

    test('origin is a non-empty string, the same on every read', [], async () => {
      const r = registry();
      const origin = r.origin;
      expect(typeof origin).toBe('string');
      expect(origin.length).toBeGreaterThan(0);
      await pushImage(r, repo(), randomImage(), 'v1');
      await r.capabilities();
      expect(r.origin).toBe(origin);
    });
  });
}
