import { type Digest, parseDigest } from './digest.js';
import { ReferenceParseError, truncate } from './errors.js';

/** Longest full name (registry + '/' + repository) the distribution grammar allows. */
export const NAME_TOTAL_LENGTH_MAX = 255;

/** Longer inputs are refused before any parsing, so no input can make parsing slow. */
const INPUT_LENGTH_MAX = 4096;

/** A parsed image reference. */
export interface ImageReference {
  /** Registry host with optional port: `docker.io`, `ghcr.io`, `localhost:5000`, `[::1]:5000`. */
  readonly registry: string;
  /** Repository path inside the registry: `library/alpine`. */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

export interface ParseReferenceOptions {
  /** Registry used when the reference names none. Default `docker.io`. */
  readonly defaultRegistry?: string;
  /**
   * Docker Hub normalization (default true): `index.docker.io` becomes
   * `docker.io`, and single-component repositories on `docker.io` get the
   * `library/` prefix. With `false` the registry and path are kept as written.
   */
  readonly normalize?: boolean;
}

export interface FormatReferenceOptions {
  /** Docker's short form: drop `docker.io/` and a lone `library/`. */
  readonly familiar?: boolean;
}

const DOCKER_HUB = 'docker.io';
const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^\w[\w.-]{0,127}$/;
const hex64 = /^[a-f0-9]{64}$/;
const domainComponent = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const ipv6Host = /^\[[a-fA-F0-9:]+\]$/;
const port = /^[0-9]+$/;

function fail(code: 'NAME_INVALID' | 'TAG_INVALID' | 'DIGEST_INVALID', input: string, reason: string): never {
  throw new ReferenceParseError(code, `invalid reference ${JSON.stringify(truncate(input))}: ${reason}`, {
    details: { input: truncate(input), reason },
  });
}

/** True when `tag` follows the tag grammar `[\w][\w.-]{0,127}`. */
export function isValidTag(tag: unknown): tag is string {
  return typeof tag === 'string' && tagPattern.test(tag);
}

/** Returns the tag or raises `ReferenceParseError` (code `TAG_INVALID`). */
export function parseTag(tag: string): string {
  if (!isValidTag(tag)) {
    const text = String(tag);
    throw new ReferenceParseError(
      'TAG_INVALID',
      `invalid tag ${JSON.stringify(truncate(text))}: tags match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`,
      {
        details: { input: truncate(text) },
      },
    );
  }
  return tag;
}

function repositoryProblem(name: string): string | undefined {
  if (name.length === 0) return 'the repository name is empty';
  if (name.length > NAME_TOTAL_LENGTH_MAX)
    return `repository names are at most ${NAME_TOTAL_LENGTH_MAX} characters`;
  for (const component of name.split('/')) {
    if (component === '') return 'the repository name has an empty path component';
    if (!pathComponent.test(component)) {
      return /[A-Z]/.test(component) && pathComponent.test(component.toLowerCase())
        ? 'repository names must be lowercase'
        : `path component ${JSON.stringify(truncate(component, 64))} is not [a-z0-9]+ joined by ".", "_", "__" or dashes`;
    }
  }
  return undefined;
}

/** True when `name` is a valid repository path (no registry host): `library/alpine`, `a/b/c`. */
export function isValidRepositoryName(name: unknown): name is string {
  return typeof name === 'string' && repositoryProblem(name) === undefined;
}

/**
 * Validates a repository path as registries see it (no host). Every store
 * calls this before a name becomes part of a file path or URL, so `..`,
 * `%2e`, absolute paths, NUL, backslashes and empty components are refused.
 */
export function parseRepositoryName(name: string): string {
  const problem = typeof name === 'string' ? repositoryProblem(name) : 'not a string';
  if (problem !== undefined) {
    const text = String(name);
    throw new ReferenceParseError(
      'NAME_INVALID',
      `invalid repository name ${JSON.stringify(truncate(text))}: ${problem}`,
      {
        details: { input: truncate(text), reason: problem },
      },
    );
  }
  return name;
}

function domainProblem(domain: string): string | undefined {
  let host = domain;
  const bracket = domain.lastIndexOf(']');
  const colon = domain.lastIndexOf(':');
  if (colon > bracket) {
    if (!port.test(domain.slice(colon + 1))) return 'the port must be digits';
    host = domain.slice(0, colon);
  }
  if (host.startsWith('[')) return ipv6Host.test(host) ? undefined : 'invalid IPv6 address';
  for (const component of host.split('.')) {
    if (!domainComponent.test(component))
      return `invalid registry host ${JSON.stringify(truncate(domain, 64))}`;
  }
  return undefined;
}

/**
 * Parses an image reference with the distribution grammar:
 * `[registry[:port]/]path[:tag][@digest]`. The first path component is a
 * registry only when it contains `.` or `:`, is `localhost`, or has upper-case
 * letters (as in distribution). Errors are `ReferenceParseError` with code
 * `NAME_INVALID`, `TAG_INVALID` or `DIGEST_INVALID`.
 */
export function parseReference(input: string, options: ParseReferenceOptions = {}): ImageReference {
  if (typeof input !== 'string') fail('NAME_INVALID', String(input), 'not a string');
  if (input.length === 0) fail('NAME_INVALID', input, 'the reference is empty');
  if (input.length > INPUT_LENGTH_MAX) fail('NAME_INVALID', input, 'the reference is too long');
  const normalize = options.normalize ?? true;

  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    try {
      digest = parseDigest(rest.slice(at + 1));
    } catch (cause) {
      throw new ReferenceParseError(
        'DIGEST_INVALID',
        `invalid reference ${JSON.stringify(truncate(input))}: ${(cause as Error).message}`,
        {
          details: { input: truncate(input) },
          cause,
        },
      );
    }
    rest = rest.slice(0, at);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    if (!isValidTag(tag)) fail('TAG_INVALID', input, 'tags match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}');
    rest = rest.slice(0, colon);
  }
  if (rest.length === 0) fail('NAME_INVALID', input, 'the repository name is empty');

  let registry: string | undefined;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      first.includes('.') ||
      first.includes(':') ||
      first === 'localhost' ||
      first !== first.toLowerCase()
    ) {
      registry = first;
      repository = rest.slice(slash + 1);
    }
  }
  if (registry !== undefined) {
    const problem = domainProblem(registry);
    if (problem) fail('NAME_INVALID', input, problem);
  }
  if (registry === undefined && hex64.test(repository)) {
    fail('NAME_INVALID', input, 'a 64-character hex string is an image ID, not a repository name');
  }
  const problem = repositoryProblem(repository);
  if (problem) fail('NAME_INVALID', input, problem);

  registry ??= options.defaultRegistry ?? DOCKER_HUB;
  if (normalize) {
    if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB;
    if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  }
  if (registry.length + 1 + repository.length > NAME_TOTAL_LENGTH_MAX) {
    fail('NAME_INVALID', input, `the full name must be at most ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  return {
    registry,
    repository,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
  };
}

/** Formats a reference: `registry/repository[:tag][@digest]`, or Docker's short form with `familiar`. */
export function formatReference(reference: ImageReference, options: FormatReferenceOptions = {}): string {
  let name = `${reference.registry}/${reference.repository}`;
  if (options.familiar && reference.registry === DOCKER_HUB) {
    const path = reference.repository;
    name = path.startsWith('library/') && path.indexOf('/', 8) < 0 ? path.slice(8) : path;
  }
  return `${name}${reference.tag === undefined ? '' : `:${reference.tag}`}${reference.digest === undefined ? '' : `@${reference.digest}`}`;
}

/** What to ask a registry for: the digest when there is one, else the tag, else `latest`. */
export function referenceTarget(reference: ImageReference): string {
  return reference.digest ?? reference.tag ?? 'latest';
}

/** The reference part of a manifest address: a tag or a digest. */
export type ManifestReference = { readonly tag: string } | { readonly digest: Digest };

/**
 * Parses the `<reference>` of `/v2/<name>/manifests/<reference>`: a digest when
 * it holds a `:` (`DigestParseError`, code `DIGEST_INVALID`, when malformed),
 * else a tag (`ReferenceParseError`, code `TAG_INVALID`).
 */
export function parseManifestReference(reference: string): ManifestReference {
  if (typeof reference === 'string' && reference.includes(':')) return { digest: parseDigest(reference) };
  return { tag: parseTag(reference) };
}
