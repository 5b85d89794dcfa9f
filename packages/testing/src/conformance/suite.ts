// What every area of the conformance suite shares: the backend under test,
// the capabilities it declared, fresh repository names, and `test`, which
// registers a case that runs only where the declared capabilities make it apply.
import {
  hasUploadSessions,
  isStowageError,
  type PutManifestOptions,
  type Registry,
  type RegistryCapabilities,
  type UploadSessions,
} from '@stowage/oci';
import type * as Vitest from 'vitest';
import type { RandomManifest } from '../random.js';
import { vitestGlobals } from '../vitest-globals.js';

export interface ConformanceSubject {
  readonly registry: Registry;
  readonly cleanup?: () => Promise<void>;
}

export interface RegistryConformanceOptions {
  /** Shown in the suite title. */
  readonly name: string;
  /**
   * Creates the backend once for the whole suite; every case uses its own
   * repositories. What the backend can do is read from its `capabilities()`.
   */
  readonly create: () => Promise<ConformanceSubject> | ConformanceSubject;
}

/** The capabilities that are true or false. */
export type BooleanCapability = {
  [K in keyof RegistryCapabilities]: RegistryCapabilities[K] extends boolean ? K : never;
}[keyof RegistryCapabilities];

/**
 * What a case asks of the declared capabilities: a boolean capability that
 * must be true (`'deleteTag'`) or false (`'!deleteTag'`, for the cases that
 * check a refusal is real); `'referrers'` for any way of answering
 * `listReferrers`, `'!referrers'` for `none`, `'referrers=tag-schema'` for
 * the tag schema.
 */
export type Need =
  | BooleanCapability
  | `!${BooleanCapability}`
  | 'referrers'
  | '!referrers'
  | 'referrers=tag-schema';

/** The reason a need is not met, or `undefined` when it is. */
function unmet(need: Need, caps: RegistryCapabilities): string | undefined {
  if (need === 'referrers') return caps.referrers === 'none' ? 'referrers' : undefined;
  if (need === '!referrers') return caps.referrers === 'none' ? undefined : `referrers is ${caps.referrers}`;
  if (need === 'referrers=tag-schema') {
    return caps.referrers === 'tag-schema' ? undefined : `referrers is ${caps.referrers}`;
  }
  if (need.startsWith('!')) {
    const name = need.slice(1) as BooleanCapability;
    return caps[name] === false ? undefined : `${name} is claimed`;
  }
  return caps[need as BooleanCapability] === true ? undefined : need;
}

export const enc = new TextEncoder();

/** The code of the `StowageError` a promise rejects with; anything else fails the case. */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isStowageError(error)) return error.code;
    throw error;
  }
  throw new Error('expected the operation to fail, it succeeded');
}

/** The `putManifest` options that push a built manifest as it is, plus `extra`. */
export function manifestBody(
  manifest: Pick<RandomManifest, 'bytes' | 'mediaType'>,
  extra: Omit<PutManifestOptions, 'bytes' | 'mediaType'> = {},
): PutManifestOptions {
  return { bytes: manifest.bytes, mediaType: manifest.mediaType, ...extra };
}

/** A body of chunks of `size` bytes. */
export function chunked(bytes: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  return (async function* () {
    for (let i = 0; i < bytes.byteLength; i += size)
      yield bytes.subarray(i, Math.min(i + size, bytes.byteLength));
  })();
}

/** One suite run: what each area's cases use. */
export interface Conformance {
  readonly describe: typeof Vitest.describe;
  readonly expect: typeof Vitest.expect;
  /** A fresh repository name for one case. */
  repo(hint?: string): string;
  /** A fresh name that is not a repository (locks). */
  unique(hint: string): string;
  /** The backend under test (once `create` has run). */
  registry(): Registry;
  /** The backend, with the upload-session members its capabilities promise. */
  sessions(): Registry & UploadSessions;
  /** The capabilities the backend declared when the suite started. */
  declared(): RegistryCapabilities;
  /**
   * Registers a case. A case whose needs the declared capabilities do not meet
   * is skipped when it runs, with the reason as its note (and in
   * `task.meta.notApplicable`): reported as skipped, never as passed.
   */
  test(title: string, needs: readonly Need[], fn: () => Promise<void>, timeout?: number): void;
}

/** Registers the suite's hooks and returns the shared context for the areas. */
export function conformanceContext(options: RegistryConformanceOptions): Conformance {
  const { afterAll, beforeAll, describe, expect, it } = vitestGlobals();
  const run = Math.random().toString(36).slice(2, 8);
  let counter = 0;
  let subject: ConformanceSubject | undefined;
  let caps: RegistryCapabilities | undefined;

  beforeAll(async () => {
    subject = await options.create();
    caps = await subject.registry.capabilities();
  });
  afterAll(async () => {
    await subject?.cleanup?.();
  });

  const registry = (): Registry => {
    if (!subject) throw new Error('the backend was not created');
    return subject.registry;
  };
  const declared = (): RegistryCapabilities => {
    if (!caps) throw new Error('the backend did not declare its capabilities');
    return caps;
  };

  return {
    describe,
    expect,
    repo: (hint = 'r') => `conformance-${run}/${hint}-${++counter}`,
    unique: (hint) => `conformance-${run}-${hint}-${++counter}`,
    registry,
    declared,
    sessions() {
      const r = registry();
      if (!hasUploadSessions(r))
        throw new Error('the backend claims upload sessions but lacks their members');
      return r;
    },
    test(title, needs, fn, timeout) {
      it(
        title,
        async (context) => {
          const reasons = needs.map((need) => unmet(need, declared())).filter((r) => r !== undefined);
          if (reasons.length > 0) {
            (context.task.meta as { notApplicable?: readonly string[] }).notApplicable = reasons;
            context.skip(`not applicable: ${reasons.join(', ')}`);
          }
          await fn();
        },
        timeout,
      );
    },
  };
}
