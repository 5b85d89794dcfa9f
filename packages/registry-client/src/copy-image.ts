import {
  type Descriptor,
  type Digest,
  manifestMediaTypes,
  manifestReferences,
  type OperationOptions,
  type Platform,
  parseManifest,
  platformMatches,
  type Registry,
} from '@stowage/oci';

/** Where an image comes from: a reference (tag or digest) in a repository of any `Registry`. */
export interface CopySource {
  readonly registry: Registry;
  readonly repository: string;
  readonly reference: string;
}

/** Where it goes; without `tag` the image is stored by digest only. */
export interface CopyDestination {
  readonly registry: Registry;
  readonly repository: string;
  readonly tag?: string;
}

export type CopyProgressEvent =
  | { readonly type: 'blob-start'; readonly digest: Digest; readonly size: number }
  | { readonly type: 'blob-progress'; readonly digest: Digest; readonly bytes: number; readonly size: number }
  | { readonly type: 'blob-done'; readonly digest: Digest; readonly size: number }
  | { readonly type: 'blob-skipped'; readonly digest: Digest; readonly size: number }
  | { readonly type: 'blob-mounted'; readonly digest: Digest; readonly size: number }
  | { readonly type: 'manifest-done'; readonly digest: Digest; readonly mediaType: string };

export interface CopyOptions extends OperationOptions {
  /**
   * Copy only the children of an index that match one of these platforms. The
   * destination then gets a new index listing just those children (so its digest
   * differs from the source's) unless every child matched. Single images are
   * copied whatever their platform.
   */
  readonly platforms?: readonly (string | Platform)[];
  /** Also copy the referrers (signatures, SBOMs…) of every manifest copied, recursively. */
  readonly referrers?: boolean;
  /** Blobs copied at once. Default 4. */
  readonly concurrency?: number;
  /**
   * Link blobs with `mountBlob` instead of moving bytes. Default: when source and
   * destination are the same `Registry` object.
   */
  readonly mount?: boolean;
  /** Called as work progresses: bytes per blob, blobs skipped or mounted, manifests pushed. */
  readonly onProgress?: (event: CopyProgressEvent) => void;
}

export interface CopyResult {
  /** Digest of the top manifest at the destination. */
  readonly digest: Digest;
  readonly mediaType: string;
  /** Manifests pushed (children, the top manifest and referrers). */
  readonly manifests: number;
  readonly blobsCopied: number;
  readonly blobsSkipped: number;
  readonly blobsMounted: number;
  readonly bytesCopied: number;
}

function limiter(concurrency: number) {
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= concurrency) await new Promise<void>((resolve) => queue.push(resolve));
    active++;
    try {
      return await task();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

/**
 * Copies an image or an index, with its blobs, from one `Registry` to another
 * (or within one). Manifest bytes are pushed exactly as read, so digests are
 * identical; blobs the destination has are skipped, blobs in the same store are
 * mounted, the rest stream through (never buffered whole) and are verified by
 * both sides. Children go before their index and the tag is set last, so a
 * failure never leaves a tag pointing at an incomplete image.
 */
export async function copyImage(
  source: CopySource,
  destination: CopyDestination,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const { signal, onProgress } = options;
  const mount = options.mount ?? source.registry === destination.registry;
  const run = limiter(Math.max(1, options.concurrency ?? 4));
  const blobs = new Map<Digest, Promise<void>>();
  const manifestsDone = new Map<Digest, Promise<void>>();
  const counts = { manifests: 0, blobsCopied: 0, blobsSkipped: 0, blobsMounted: 0, bytesCopied: 0 };
  const signalOption = signal ? { signal } : {};

  async function copyBlob(descriptor: Descriptor): Promise<void> {
    const { digest, size } = descriptor;
    signal?.throwIfAborted();
    if (await destination.registry.headBlob(destination.repository, digest, signalOption)) {
      counts.blobsSkipped++;
      onProgress?.({ type: 'blob-skipped', digest, size });
      return;
    }
    if (mount) {
      const mounted = await destination.registry.mountBlob(destination.repository, digest, {
        from: source.repository,
        ...signalOption,
      });
      if (mounted) {
        counts.blobsMounted++;
        onProgress?.({ type: 'blob-mounted', digest, size });
        return;
      }
    }
    onProgress?.({ type: 'blob-start', digest, size });
    const content = await source.registry.getBlob(source.repository, digest, signalOption);
    let bytes = 0;
    const counted = (async function* () {
      for await (const chunk of content.stream as AsyncIterable<Uint8Array>) {
        bytes += chunk.byteLength;
        onProgress?.({ type: 'blob-progress', digest, bytes, size });
        yield chunk;
      }
    })();
    try {
      await destination.registry.putBlob(destination.repository, counted, { digest, size, ...signalOption });
    } finally {
      content.stream.destroy();
    }
    counts.blobsCopied++;
    counts.bytesCopied += bytes;
    onProgress?.({ type: 'blob-done', digest, size });
  }

  function blob(descriptor: Descriptor): Promise<void> {
    let pending = blobs.get(descriptor.digest);
    if (!pending) {
      pending = run(() => copyBlob(descriptor));
      blobs.set(descriptor.digest, pending);
    }
    return pending;
  }

  /** Copies one manifest (and what it needs), pushing it under `reference`; returns what was pushed. */
  async function copyManifest(
    reference: string,
    target: string | undefined,
  ): Promise<{ digest: Digest; mediaType: string }> {
    const content = await source.registry.getManifest(source.repository, reference, {
      accept: manifestMediaTypes,
      ...signalOption,
    });
    const parsed = parseManifest(content.bytes, { mediaType: content.mediaType });
    let bytes = content.bytes;
    if (parsed.kind === 'index') {
      const wanted = options.platforms;
      const children = wanted
        ? parsed.manifest.manifests.filter(
            (child) =>
              child.platform !== undefined &&
              wanted.some((p) => platformMatches(p, child.platform as Platform)),
          )
        : parsed.manifest.manifests;
      await Promise.all(children.map((child) => childManifest(child.digest)));
      if (children.length !== parsed.manifest.manifests.length) {
        const value = JSON.parse(new TextDecoder().decode(content.bytes)) as Record<string, unknown>;
        bytes = new TextEncoder().encode(JSON.stringify({ ...value, manifests: children }));
      }
    } else {
      await Promise.all(manifestReferences(parsed).blobs.map((descriptor) => blob(descriptor)));
    }
    const pushed = await destination.registry.putManifest(
      destination.repository,
      target ?? parsed.digest,
      bytes,
      {
        mediaType: parsed.mediaType,
        ...signalOption,
      },
    );
    counts.manifests++;
    onProgress?.({ type: 'manifest-done', digest: pushed.digest, mediaType: parsed.mediaType });
    if (options.referrers) await copyReferrers(content.digest);
    return { digest: pushed.digest, mediaType: parsed.mediaType };
  }

  function childManifest(digest: Digest): Promise<void> {
    let pending = manifestsDone.get(digest);
    if (!pending) {
      pending = copyManifest(digest, undefined).then(() => undefined);
      manifestsDone.set(digest, pending);
    }
    return pending;
  }

  async function copyReferrers(subject: Digest): Promise<void> {
    const referrers = await source.registry.listReferrers(source.repository, subject, signalOption);
    await Promise.all(referrers.manifests.map((referrer) => childManifest(referrer.digest)));
  }

  const top = await copyManifest(source.reference, destination.tag);
  return { ...top, ...counts, mediaType: top.mediaType };
}
