import { describe, expect, it } from 'vitest';
import { digestOf } from './digest.js';
import { filterReferrers, referrerDescriptor, subjectOf } from './referrers.js';

const subject = digestOf('subject');
const enc = new TextEncoder();

describe('referrerDescriptor', () => {
  it('takes artifactType from the manifest, else from the config, and keeps annotations', () => {
    const withType = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'a/b',
      subject: { digest: subject },
    };
    const bytes = enc.encode(JSON.stringify(withType));
    const d1 = referrerDescriptor({
      digest: digestOf(bytes),
      mediaType: 'x',
      size: bytes.length,
      manifest: bytes,
    });
    expect(d1).toEqual({
      mediaType: withType.mediaType,
      digest: digestOf(bytes),
      size: bytes.length,
      artifactType: 'a/b',
    });
    const fromConfig = { config: { mediaType: 'c/d' }, annotations: { k: 'v' } };
    const d2 = referrerDescriptor({ digest: subject, mediaType: 'm/n', size: 3, manifest: fromConfig });
    expect(d2).toEqual({
      mediaType: 'm/n',
      digest: subject,
      size: 3,
      artifactType: 'c/d',
      annotations: { k: 'v' },
    });
  });
  it('survives bytes that are not JSON', () => {
    expect(
      referrerDescriptor({ digest: subject, mediaType: 'm/n', size: 1, manifest: enc.encode('{') }),
    ).toEqual({
      mediaType: 'm/n',
      digest: subject,
      size: 1,
    });
  });
  it('reads a valid subject only', () => {
    expect(subjectOf({ subject: { digest: subject } })).toBe(subject);
    expect(subjectOf({ subject: { digest: 'sha256:nothex' } })).toBeUndefined();
    expect(subjectOf(enc.encode('nope'))).toBeUndefined();
  });
});

describe('filterReferrers', () => {
  const a = { mediaType: 'm', digest: digestOf('a'), size: 1, artifactType: 't/1' };
  const b = { mediaType: 'm', digest: digestOf('b'), size: 1, artifactType: 't/2' };
  it('sorts by digest and reports the filter it applied', () => {
    const sorted = [a, b].sort((x, y) => (x.digest < y.digest ? -1 : 1));
    expect(filterReferrers([b, a])).toEqual({ manifests: sorted, filtersApplied: [] });
    expect(filterReferrers([b, a], 't/2')).toEqual({ manifests: [b], filtersApplied: ['artifactType'] });
  });
});
