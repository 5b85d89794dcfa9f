import { isStowageError } from '@stowage/oci';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  byteLength,
  classifyTag,
  encodeClientIdTag,
  encodeMetaTag,
  encodeRejectedTag,
  encodeStageTag,
  isValidDockerTag,
  limitedSlug,
  parseClientIdTag,
  parseCustomTagMetaTag,
  parseImportMetadataTag,
  parseManagedImageTag,
  parseMetaTag,
  parseReferrersTag,
  parseRejectedTag,
  parseStageTag,
  slugify,
} from './index.js';

const runs = { numRuns: 1000 };
const pieces = fc.constantFrom(
  'meta-',
  'client-id-',
  'managed-image-',
  'custom-tag-meta-',
  'import-metadata-',
  '-rejected',
  'sync-server',
  'cleanup',
  'sha256-',
  '_',
  '-',
  '+',
  'a'.repeat(56),
  '1700000000123',
  '9'.repeat(20),
  'ы',
  '\uD800',
);
const tagish = fc
  .array(fc.oneof(pieces, fc.string({ maxLength: 4 })), { maxLength: 8 })
  .map((p) => p.join(''));
const anyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  tagish,
);
const hex56 = fc.stringMatching(/^[0-9a-f]{56}$/);
const ts = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });

const parsers = [
  parseStageTag,
  parseMetaTag,
  parseClientIdTag,
  parseRejectedTag,
  parseManagedImageTag,
  parseCustomTagMetaTag,
  parseImportMetadataTag,
  parseReferrersTag,
];

describe('tag parsers', () => {
  it('never throw anything but TagParseError', () => {
    fc.assert(
      fc.property(anyString, (tag) => {
        for (const parse of parsers) {
          try {
            parse(tag);
          } catch (error) {
            if (!isStowageError(error, 'TAG_INVALID')) throw error;
          }
        }
        classifyTag(tag);
      }),
      runs,
    );
  });

  it('round-trip what the encoders write', () => {
    fc.assert(
      fc.property(hex56, ts, (digest, creationTs) => {
        expect(parseStageTag(encodeStageTag({ digest, creationTs }))).toEqual({ digest, creationTs });
        expect(parseRejectedTag(encodeRejectedTag({ digest, creationTs }))).toEqual({ digest, creationTs });
        expect(classifyTag(encodeStageTag({ digest, creationTs }))).toEqual(
          creationTs.toString().length === 13 ? { kind: 'stage', digest, creationTs } : expect.anything(),
        );
      }),
      runs,
    );
    fc.assert(
      fc.property(fc.uuid(), ts, (clientId, timestampMs) => {
        expect(parseClientIdTag(encodeClientIdTag({ clientId, timestampMs }))).toEqual({
          clientId,
          timestampMs,
        });
      }),
      runs,
    );
    const part = fc.stringMatching(/^[0-9a-zA-Z.-]{1,20}$/);
    fc.assert(
      fc.property(part, part, part, (imageMetadataId, commit, stageId) => {
        expect(parseMetaTag(encodeMetaTag({ imageMetadataId, commit, stageId }))).toEqual({
          imageMetadataId,
          commit,
          stageId,
        });
      }),
      runs,
    );
  });
});

describe('limitedSlug', () => {
  it('gives a valid docker tag within max bytes whenever it slugs, and is idempotent', () => {
    fc.assert(
      fc.property(anyString, fc.integer({ min: 10, max: 128 }), (data, max) => {
        const out = limitedSlug(data, max);
        if (out !== data) {
          expect(isValidDockerTag(out)).toBe(true);
          expect(byteLength(out)).toBeLessThanOrEqual(max);
          // werf relies on this: a record ID computed twice stays the same.
          expect(limitedSlug(out, max)).toBe(out);
        }
      }),
      runs,
    );
  });

  it('slugify output is a fixed point of slugify', () => {
    fc.assert(
      fc.property(anyString, (data) => slugify(slugify(data)) === slugify(data)),
      runs,
    );
  });
});
