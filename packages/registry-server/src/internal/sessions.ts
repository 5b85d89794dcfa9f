// The upload sessions started through one handler and not yet seen to end, for `onUpload`.
import { isStowageError, type UploadSessions } from '@stowage/oci';

export interface SessionTracker {
  started(repository: string, id: string): void;
  ended(repository: string, id: string): void;
  /** After a failed request on a session: notices when the failure ended it. */
  afterFailure(repository: string, id: string, error: unknown): Promise<void>;
  /** Reports the sessions the store no longer knows as ended; answers how many. */
  sweep(): Promise<number>;
}

export function createSessionTracker(
  registry: Pick<UploadSessions, 'getUpload'>,
  onUpload: ((delta: 1 | -1) => void) | undefined,
): SessionTracker {
  const sessions = new Map<string, { readonly repository: string; readonly id: string }>();
  const key = (repository: string, id: string) => `${repository}\n${id}`;

  function started(repository: string, id: string): void {
    sessions.set(key(repository, id), { repository, id });
    onUpload?.(1);
  }

  function ended(repository: string, id: string): void {
    if (sessions.delete(key(repository, id))) onUpload?.(-1);
  }

  /** Whether the store still has the session; anything but `BLOB_UPLOAD_UNKNOWN` counts as yes. */
  async function alive(repository: string, id: string): Promise<boolean> {
    try {
      await registry.getUpload(repository, id);
      return true;
    } catch (error) {
      return !isStowageError(error, 'BLOB_UPLOAD_UNKNOWN');
    }
  }

  return {
    started,
    ended,
    async afterFailure(repository, id, error) {
      if (!sessions.has(key(repository, id))) return;
      if (isStowageError(error, 'BLOB_UPLOAD_UNKNOWN') || !(await alive(repository, id))) {
        ended(repository, id);
      }
    },
    async sweep() {
      let count = 0;
      for (const { repository, id } of [...sessions.values()]) {
        if (await alive(repository, id)) continue;
        if (sessions.has(key(repository, id))) count++;
        ended(repository, id);
      }
      return count;
    },
  };
}
