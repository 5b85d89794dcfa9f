import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { ifExists, writeFileAtomic } from './fs-utils.js';

const JOURNAL_MAGIC = 'stowage image journal ';
/** A journal longer than this is started afresh by the next write. */
const COMPACT_AT = 8 << 20;

export interface ChangeJournalOptions {
  /** `images.lock`: the change token. */
  readonly tokenPath: string;
  /** `images.journal`: a header line, then the ID of each changed record, one a line. */
  readonly journalPath: string;
  readonly readOnly: boolean;
}

/**
 * How processes sharing a root learn what the others changed in the image
 * records: every write replaces the change token (64 bytes: time, counter,
 * pid, random) and appends the IDs it changes to the journal. A reader
 * compares the token (one 64-byte read); when it moved, it reads only the
 * journal lines since its last look, or everything when the journal was
 * started afresh (a new header) since.
 *
 * Every call but `readToken` and `matches` is made under the records' lock.
 */
export class ChangeJournal {
  readonly #o: ChangeJournalOptions;
  /** The token of the state this process has caught up with. */
  #token: Buffer = Buffer.alloc(0);
  #generation = '';
  #offset = 0;
  #counter = 0n;
  #tokenHandle: FileHandle | undefined;

  constructor(options: ChangeJournalOptions) {
    this.#o = options;
  }

  /** The change token on disk now (empty before the first write). */
  async readToken(): Promise<Buffer> {
    if (!this.#tokenHandle) {
      const flags = this.#o.readOnly ? constants.O_RDONLY : constants.O_RDWR | constants.O_CREAT;
      try {
        this.#tokenHandle = await open(this.#o.tokenPath, flags, 0o644);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
        throw error;
      }
    }
    const buffer = Buffer.alloc(64);
    const { bytesRead } = await this.#tokenHandle.read(buffer, 0, 64, 0);
    return buffer.subarray(0, bytesRead);
  }

  /** Whether `token` is the one this process last caught up with. */
  matches(token: Buffer): boolean {
    return token.equals(this.#token);
  }

  /** This process has caught up with the state `token` names. */
  caughtUp(token: Buffer): void {
    this.#token = token;
  }

  /** Starts reading from the journal's end (after reading every record). */
  async rewind(): Promise<void> {
    const header = await this.#header();
    this.#generation = header?.generation ?? '';
    this.#offset = header?.size ?? 0;
  }

  /**
   * The IDs the journal names since the last look; `undefined` when the
   * journal was replaced or cut since, so every record must be read again.
   */
  async changesSince(): Promise<string[] | undefined> {
    const header = await this.#header();
    if (!header || header.generation !== this.#generation || header.size < this.#offset) return undefined;
    const handle = await open(this.#o.journalPath, 'r');
    let text: string;
    try {
      const buffer = Buffer.alloc(header.size - this.#offset);
      await handle.read(buffer, 0, buffer.length, this.#offset);
      const end = buffer.lastIndexOf(0x0a) + 1;
      text = buffer.subarray(0, end).toString('utf8');
      this.#offset += end;
    } finally {
      await handle.close();
    }
    return [...new Set(text.split('\n').filter(Boolean))];
  }

  /** Announces a write of these records: a new token, then their IDs in the journal. */
  async record(ids: readonly string[]): Promise<void> {
    await this.#writeToken();
    // The caller caught up under this lock, so the generation and offset are current.
    if (!this.#generation || this.#offset > COMPACT_AT) await this.#newJournal();
    const lines = ids.map((id) => `${id}\n`).join('');
    const journal = await open(this.#o.journalPath, 'a');
    try {
      await journal.write(lines);
    } finally {
      await journal.close();
    }
    this.#offset += Buffer.byteLength(lines);
  }

  async close(): Promise<void> {
    await this.#tokenHandle?.close();
    this.#tokenHandle = undefined;
  }

  async #writeToken(): Promise<void> {
    await this.readToken();
    const token = Buffer.alloc(64);
    const now = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
    token.writeBigUInt64LE(now, 0);
    this.#counter++;
    token.writeBigUInt64LE(this.#counter, 8);
    token.writeUInt32LE(process.pid >>> 0, 16);
    randomBytes(44).copy(token, 20);
    await (this.#tokenHandle as FileHandle).write(token, 0, 64, 0);
    this.#token = token;
  }

  async #header(): Promise<{ generation: string; size: number } | undefined> {
    const handle = await ifExists(open(this.#o.journalPath, 'r'));
    if (!handle) return undefined;
    try {
      const buffer = Buffer.alloc(128);
      const { bytesRead } = await handle.read(buffer, 0, 128, 0);
      const line = buffer.subarray(0, bytesRead).toString('utf8').split('\n')[0] ?? '';
      const size = (await handle.stat()).size;
      return line.startsWith(JOURNAL_MAGIC) ? { generation: line, size } : undefined;
    } finally {
      await handle.close();
    }
  }

  async #newJournal(): Promise<void> {
    const header = `${JOURNAL_MAGIC}${randomBytes(16).toString('hex')}\n`;
    await writeFileAtomic(this.#o.journalPath, header);
    this.#generation = header.slice(0, -1);
    this.#offset = Buffer.byteLength(header);
  }
}
