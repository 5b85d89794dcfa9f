/**
 * The staging journal. A synced image's blobs are staged in upload sessions
 * of the destination (where readers cannot see them) and committed only once
 * every one is verified. The journal names the open sessions in a file of the
 * state directory, so after a crash the next run cancels what the dead one
 * left. A session whose creation the crash interrupted before it was
 * journalled is left to the store's own purge of old uploads.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
// Our own mkdir -p: Node 20's recursive mkdir loops for ever where a parent refuses the entry (/proc).
import { mkdir } from '@stowage/blob-store';
import { isStowageError, type Registry } from '@stowage/oci';

export interface StagingJournal {
  /** Records that a session is about to be opened in `repository`. */
  opening(repository: string): void;
  /** Records an open session (before any byte is sent to it). */
  opened(repository: string, id: string): void;
  /** Forgets a session once finished or cancelled. */
  closed(repository: string, id: string): void;
}

/** A journal file of this process, open for appends; `close` removes it when nothing is left open. */
export interface JournalFile extends StagingJournal {
  readonly path: string;
  close(): Promise<void>;
}

const JOURNAL = /^journal-(\d+)-[0-9a-z]+\.log$/;

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, owned by someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * What a journal's lines leave behind: sessions opened and never closed, and
 * repositories where a session was being opened when the run died (`? repo`
 * with no `+ repo id` after it: the store may hold a session nobody knows).
 */
export function readJournal(text: string): {
  open: { repository: string; id: string }[];
  interrupted: string[];
} {
  const open = new Map<string, { repository: string; id: string }>();
  const opening = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([?+-]) (\S+)(?: (\S+))?$/.exec(line);
    if (!match) continue; // a torn last line
    const [, sign, repository, id] = match as unknown as [string, string, string, string | undefined];
    if (sign === '?') {
      opening.set(repository, (opening.get(repository) ?? 0) + 1);
      continue;
    }
    if (id === undefined) continue; // torn before its id
    const key = `${repository} ${id}`;
    if (sign === '+') {
      open.set(key, { repository, id });
      const left = (opening.get(repository) ?? 1) - 1;
      if (left > 0) opening.set(repository, left);
      else opening.delete(repository);
    } else open.delete(key);
  }
  return { open: [...open.values()], interrupted: [...opening.keys()] };
}

export interface RecoveryReport {
  /** Sessions of dead runs that were cancelled. */
  readonly cancelled: number;
  /** Journals of dead runs removed. */
  readonly journals: number;
  /** Repositories where a dead run died while opening a session: any it opened is left to the store's upload purge. */
  readonly interrupted: readonly string[];
}

/**
 * Cancels the sessions that runs which died (their process is gone) left open
 * in `dir`, then removes their journals. Journals of live processes are left alone.
 */
export async function recoverStaging(dir: string, destination: Registry): Promise<RecoveryReport> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      return { cancelled: 0, journals: 0, interrupted: [] };
    throw error;
  }
  let cancelled = 0;
  let journals = 0;
  const interrupted = new Set<string>();
  for (const name of names) {
    const match = JOURNAL.exec(name);
    if (!match || alive(Number(match[1]))) continue;
    const path = join(dir, name);
    const journal = readJournal(await readFile(path, 'utf8'));
    for (const repository of journal.interrupted) interrupted.add(repository);
    for (const { repository, id } of journal.open) {
      try {
        await destination.cancelUpload?.(repository, id);
        cancelled++;
      } catch (error) {
        // Finished, purged, or from a store since emptied: nothing is left to free.
        if (!isStowageError(error, 'BLOB_UPLOAD_UNKNOWN') && !isStowageError(error, 'NAME_UNKNOWN'))
          throw error;
      }
    }
    await unlink(path);
    journals++;
  }
  return { cancelled, journals, interrupted: [...interrupted] };
}

/** Opens this process's journal in `dir` (created when missing). */
export async function openJournal(dir: string): Promise<JournalFile> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, `journal-${process.pid}-${Math.random().toString(36).slice(2, 10)}.log`);
  const fd = openSync(path, 'a');
  let open = 0;
  let closed = false;
  // Synchronous appends: a line is in the file (the page cache survives a SIGKILL) before the caller goes on.
  const write = (line: string) => {
    if (!closed) writeSync(fd, `${line}\n`);
  };
  return {
    path,
    opening(repository) {
      write(`? ${repository}`);
    },
    opened(repository, id) {
      open++;
      write(`+ ${repository} ${id}`);
    },
    closed(repository, id) {
      open--;
      write(`- ${repository} ${id}`);
    },
    async close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
      // Sessions still open (a failure while cancelling) stay journalled for the next run.
      if (open <= 0) await unlink(path);
    },
  };
}
