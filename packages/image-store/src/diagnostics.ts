import { channel } from 'node:diagnostics_channel';
import type { ImageStoreGcReport } from './gc.js';

/** `diagnostics_channel` name of one message per garbage collection run of an image store. */
export const GC_CHANNEL = 'stowage:image-store:gc';

/** Published on `stowage:image-store:gc` when a garbage collection run ends (dry runs too). */
export interface ImageStoreGcMessage {
  /** The store's root directory. */
  readonly root: string;
  readonly report: ImageStoreGcReport;
}

const gcChannel = channel(GC_CHANNEL);

export function publishGc(message: () => ImageStoreGcMessage): void {
  if (gcChannel.hasSubscribers) gcChannel.publish(message());
}
