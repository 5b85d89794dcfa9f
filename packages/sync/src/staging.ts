/**
 * The staging journal. A synced image's blobs are staged in upload sessions
 * of the destination (where readers cannot see them) and committed only once
 * every one is verified. The journal names the open sessions in a file, so
 * after a crash the next run cancels what the dead one left; a session whose
 * creation the crash interrupted before it was journalled is removed by the
 * store's own purge of old uploads.
 */
export interface StagingJournal {
  /** Records an open session (before any byte is sent to it). */
  opened(repository: string, id: string): void;
  /** Forgets a session once finished or cancelled. */
  closed(repository: string, id: string): void;
}
