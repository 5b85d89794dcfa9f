import type { Digest } from '@stowage/oci';

/** What happened to one image (one tag, or one digest on demand). */
export interface ImageOutcome {
  /** The upstream URL it was read from. */
  readonly upstream: string;
  /** Upstream repository name. */
  readonly remote: string;
  /** Local repository name. */
  readonly repository: string;
  /** The tag (or the digest, for an image asked for by digest). */
  readonly reference: string;
  /** `synced`: copied (wholly or what changed); `skipped`: the local tag already held this digest; `failed`: nothing of it was committed. */
  readonly status: 'synced' | 'skipped' | 'failed';
  /** The upstream manifest digest, when it was learnt. */
  readonly digest?: Digest;
  readonly blobsCopied: number;
  readonly blobsSkipped: number;
  readonly bytesCopied: number;
  readonly manifests: number;
  /** For a failure: the error's code and one-line message. */
  readonly error?: { readonly code: string; readonly message: string };
}

/** One pass over the configured upstreams. */
export interface SyncReport {
  readonly startedAt: string;
  readonly durationMs: number;
  readonly images: readonly ImageOutcome[];
  readonly synced: number;
  readonly skipped: number;
  readonly failed: number;
  readonly bytesCopied: number;
  /** Problems above one image (an upstream unreachable, a catalog refused), by upstream. */
  readonly errors: readonly {
    readonly upstream: string;
    readonly repository?: string;
    readonly code: string;
    readonly message: string;
  }[];
}

/** Progress of a pass, for a display: one event per image started and ended, and bytes as they move. */
export type SyncEvent =
  /** A repository's tags were listed: `images` more to sync (their sum is the pass's plan). */
  | { readonly type: 'plan'; readonly upstream: string; readonly images: number }
  | {
      readonly type: 'image-start';
      readonly upstream: string;
      readonly repository: string;
      readonly reference: string;
    }
  | { readonly type: 'bytes'; readonly bytes: number }
  | { readonly type: 'image-done'; readonly outcome: ImageOutcome };
