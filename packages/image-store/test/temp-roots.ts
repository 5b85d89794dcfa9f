// Test helpers: temporary store roots removed after the file's tests, and the code of a refusal.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isStowageError } from '@stowage/oci';
import { afterAll } from 'vitest';

/** A `freshRoot()` that makes a new empty directory per call, all removed once the file's tests ran. */
export function tempRoots(prefix: string): () => Promise<string> {
  const roots: string[] = [];
  afterAll(async () => {
    for (const root of roots) await rm(root, { recursive: true, force: true });
  });
  return async () => {
    const root = await mkdtemp(join(tmpdir(), prefix));
    roots.push(root);
    return root;
  };
}

/** The code a promise is refused with (a StowageError), `undefined` when it resolves; rethrows anything else. */
export async function refusalCode(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    if (isStowageError(error)) return error.code;
    throw error;
  }
  return undefined;
}
