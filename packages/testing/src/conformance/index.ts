import { vitestGlobals } from '../vitest-globals.js';
import { blobCases } from './blobs.js';
import { capabilityCases } from './capabilities.js';
import { concurrencyCases } from './concurrency.js';
import { manifestCases } from './manifests.js';
import { optionalCases } from './optional.js';
import { referrerCases } from './referrers.js';
import { conformanceContext, type RegistryConformanceOptions } from './suite.js';
import { tagCases } from './tags.js';
import { uploadCases } from './uploads.js';

export type { ConformanceSubject, RegistryConformanceOptions } from './suite.js';

/**
 * The one suite every `Registry` implementation runs. It registers vitest
 * cases; call it at the top level of a test file (or inside a `describe`).
 * What the store can do is read from its `capabilities()` when the suite
 * starts: a case needing a capability the store does not declare is skipped,
 * with the reason; a store that claims what it cannot do fails the cases of
 * that capability, and one that declares a capability false must refuse it
 * for real.
 */
export function registryConformance(options: RegistryConformanceOptions): void {
  const { describe } = vitestGlobals();
  describe(`Registry conformance: ${options.name}`, () => {
    const c = conformanceContext(options);
    capabilityCases(c);
    blobCases(c);
    manifestCases(c);
    tagCases(c);
    referrerCases(c);
    uploadCases(c);
    concurrencyCases(c);
    optionalCases(c);
  });
}
