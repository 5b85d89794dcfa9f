import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { digestOf, parseDigest } from './digest.js';
import { isStowageError } from './errors.js';
import { formatPlatform, parsePlatform } from './platform.js';
import { formatReference, parseReference, parseRepositoryName, parseTag } from './reference.js';

const runs = { numRuns: 1000 };

/** Calls `fn`; passes when it returns or throws a Stowage error with one of `codes`. */
function onlyTyped(fn: () => unknown, codes: readonly string[]): boolean {
  try {
    fn();
    return true;
  } catch (error) {
    if (isStowageError(error) && codes.includes(error.code)) return true;
    throw error;
  }
}

// Strings built from the characters references are made of, so that the
// parsers get past their first checks and exercise the deep paths.
const refChars = fc.constantFrom(
  ...'abcxyz019ABZ._-/:@[]%\\ \0'.split(''),
  'sha256:',
  'localhost',
  '__',
  '..',
);
const refish = fc.array(refChars, { maxLength: 40 }).map((parts) => parts.join(''));
const anyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  refish,
);

const alnum = fc.stringMatching(/^[a-z0-9]{1,8}$/);
const separator = fc.constantFrom('.', '_', '__', '-', '--');
const component = fc
  .tuple(alnum, fc.array(fc.tuple(separator, alnum), { maxLength: 2 }))
  .map(([head, rest]) => head + rest.map(([s, a]) => s + a).join(''));
const path = fc.array(component, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('/'));
const domain = fc
  .tuple(
    fc.array(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?$/), { minLength: 1, maxLength: 3 }),
    fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
  )
  .map(([parts, port]) => {
    const host = parts.length === 1 ? `${parts[0]}.io` : parts.join('.');
    return port === undefined ? host : `${host}:${port}`;
  });
const tag = fc.stringMatching(/^\w[\w.-]{0,20}$/);
const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const digest = fc.oneof(
  hex(64).map((h) => `sha256:${h}`),
  hex(128).map((h) => `sha512:${h}`),
);
const reference = fc
  .tuple(
    fc.option(domain, { nil: undefined }),
    path,
    fc.option(tag, { nil: undefined }),
    fc.option(digest, { nil: undefined }),
  )
  .filter(([d, p]) => {
    // Without a registry, a first component with a dot or named localhost would be read as a host.
    const first = p.split('/')[0] ?? '';
    if (d === undefined && (first.includes('.') || first === 'localhost')) return false;
    return (d?.length ?? 9) + 1 + p.length <= 255 && !/^[a-f0-9]{64}$/.test(p);
  })
  .map(
    ([d, p, t, g]) =>
      `${d === undefined ? '' : `${d}/`}${p}${t === undefined ? '' : `:${t}`}${g === undefined ? '' : `@${g}`}`,
  );

describe('parsers never throw anything but their typed errors', () => {
  it('parseReference', () => {
    fc.assert(
      fc.property(anyString, (s) =>
        onlyTyped(() => parseReference(s), ['NAME_INVALID', 'TAG_INVALID', 'DIGEST_INVALID']),
      ),
      runs,
    );
  });

  it('parseRepositoryName', () => {
    fc.assert(
      fc.property(anyString, (s) => onlyTyped(() => parseRepositoryName(s), ['NAME_INVALID'])),
      runs,
    );
  });

  it('parseTag', () => {
    fc.assert(
      fc.property(anyString, (s) => onlyTyped(() => parseTag(s), ['TAG_INVALID'])),
      runs,
    );
  });

  it('parseDigest', () => {
    const digestish = fc.oneof(
      anyString,
      fc.tuple(fc.constantFrom('sha256:', 'sha512:', 'md5:', ''), anyString).map(([a, b]) => a + b),
    );
    fc.assert(
      fc.property(digestish, (s) => onlyTyped(() => parseDigest(s), ['DIGEST_INVALID'])),
      runs,
    );
  });

  it('parsePlatform', () => {
    fc.assert(
      fc.property(anyString, (s) => onlyTyped(() => parsePlatform(s), ['PLATFORM_INVALID'])),
      runs,
    );
  });

  it('stays fast on long hostile inputs', () => {
    const hostile = [
      'a-'.repeat(2000),
      `${'a.'.repeat(1000)}com/x`,
      `${'a'.repeat(3000)}!`,
      `x/${'a_'.repeat(1500)}`,
    ];
    for (const s of hostile)
      onlyTyped(() => parseReference(s), ['NAME_INVALID', 'TAG_INVALID', 'DIGEST_INVALID']);
  });
});

describe('format(parse(x)) round-trips', () => {
  it('references: normalized form is a fixed point', () => {
    fc.assert(
      fc.property(reference, (s) => {
        const parsed = parseReference(s);
        const formatted = formatReference(parsed);
        expect(parseReference(formatted)).toEqual(parsed);
        expect(formatReference(parseReference(formatted))).toBe(formatted);
        expect(parseReference(formatReference(parsed, { familiar: true }))).toEqual(parsed);
      }),
      runs,
    );
  });

  it('references with an explicit non-Hub registry format back to the input', () => {
    const canonical = fc
      .tuple(domain, path, fc.option(tag, { nil: undefined }), fc.option(digest, { nil: undefined }))
      .filter(
        ([d, p]) =>
          d.length + 1 + p.length <= 255 && !d.startsWith('docker.io') && !d.startsWith('index.docker.io'),
      )
      .map(([d, p, t, g]) => `${d}/${p}${t === undefined ? '' : `:${t}`}${g === undefined ? '' : `@${g}`}`);
    fc.assert(
      fc.property(canonical, (s) => formatReference(parseReference(s)) === s),
      runs,
    );
  });

  it('digests', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 256 }),
        (bytes) => parseDigest(digestOf(bytes)) === digestOf(bytes),
      ),
      runs,
    );
    fc.assert(
      fc.property(digest, (d) => parseDigest(d) === d),
      runs,
    );
  });

  it('platforms', () => {
    const platform = fc
      .tuple(
        fc.constantFrom('linux', 'windows', 'darwin', 'freebsd'),
        fc.constantFrom('amd64', '386', 'ppc64le', 's390x', 'riscv64', 'arm64', 'arm'),
        fc.constantFrom(undefined, 'v5', 'v6', 'v7'),
      )
      .map(([os, arch, variant]) =>
        parsePlatform(`${os}/${arch}${variant && arch === 'arm' ? `/${variant}` : ''}`),
      );
    fc.assert(
      fc.property(platform, (p) => JSON.stringify(parsePlatform(formatPlatform(p))) === JSON.stringify(p)),
      runs,
    );
  });
});
