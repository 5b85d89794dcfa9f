import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createRegistryClient } from '@stowage/registry-client';
import { listStagesByDigest } from '@stowage/tags';
import { type DockerRegistry, requirePeers, startDockerRegistry } from '@stowage/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = join(import.meta.dirname, '../../..');
const fixture = join(import.meta.dirname, 'locks/fixtures/stage-pusher.ts');
const FIXED_MS = 1_700_000_000_123;
const N = 5;

/** One stage-pusher process and what it printed so far. */
class Pusher {
  readonly child: ChildProcess;
  readonly issued: number[] = [];
  readonly pushed: number[] = [];
  /** Indexes of the acquires that found the lock taken. */
  readonly busy = new Set<number>();
  ready = false;
  done = false;
  readonly exited: Promise<number | null>;
  #waiters: (() => void)[] = [];

  constructor(args: readonly string[]) {
    this.child = spawn(
      process.execPath,
      ['--conditions=@stowage/source', '--import', 'tsx', fixture, ...args],
      {
        cwd: repoRoot,
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    void this.exited.then(() => this.#notify());
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const [word, value] = line.split(' ');
      if (word === 'ready') this.ready = true;
      else if (word === 'issued') this.issued.push(Number(value));
      else if (word === 'pushed') this.pushed.push(Number(value));
      else if (word === 'busy') this.busy.add(Number(value));
      else if (word === 'done') this.done = true;
      this.#notify();
    });
  }

  #notify(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /** Resolves once `predicate` holds (checked after every line); rejects if the process ends first. */
  async until(predicate: () => boolean): Promise<void> {
    while (!predicate()) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `stage pusher exited (${this.child.exitCode ?? this.child.signalCode}) while waited on`,
        );
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  send(word: string): void {
    this.child.stdin!.write(`${word}\n`);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

describe('stage IDs made by two processes in the same millisecond', () => {
  if (!requirePeers('docker-registry')) return;
  let registry: DockerRegistry;
  const pushers: Pusher[] = [];
  const homes: string[] = [];
  let repoSeq = 0;
  beforeAll(async () => {
    registry = await startDockerRegistry();
  });
  afterEach(async () => {
    for (const p of pushers.splice(0)) p.kill();
    for (const home of homes.splice(0)) await rm(home, { recursive: true, force: true });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  async function twoPushers(
    mode: 'host' | 'none',
  ): Promise<{ a: Pusher; b: Pusher; repository: string; digest: string }> {
    const home = await mkdtemp(join(tmpdir(), 'stowage-stage-id-'));
    homes.push(home);
    const repository = `stage-ids/run-${mode}-${++repoSeq}`;
    const digest = (0xabcdef + repoSeq).toString(16).padStart(56, '7');
    const args = [registry.host, repository, digest, String(N), String(FIXED_MS), mode, home];
    const a = new Pusher(args);
    const b = new Pusher(args);
    pushers.push(a, b);
    await a.until(() => a.ready);
    await b.until(() => b.ready);
    a.send('start');
    b.send('start');
    return { a, b, repository, digest };
  }

  async function stagesInRepository(repository: string, digest: string): Promise<number[]> {
    const client = createRegistryClient({ registry: registry.host, auth: { useConfigFiles: false } });
    const tags: string[] = [];
    let last: string | undefined;
    for (;;) {
      const page = await client.listTags(repository, last === undefined ? {} : { last });
      tags.push(...page.items);
      if (page.next === undefined) break;
      last = page.next;
    }
    return listStagesByDigest(tags, digest)
      .map((s) => s.creationTs)
      .sort((x, y) => x - y);
  }

  it('with host locks they never collide: 2N distinct creationTs and 2N stages in the repository', async () => {
    const { a, b, repository, digest } = await twoPushers('host');
    // A pusher holding the lock is told to push only once the other one, if it
    // has stages left to make, has been refused the lock in its current
    // acquire: those rounds are contended for sure (flock polling is not fair,
    // so one process may win several rounds in a row).
    let contended = 0;
    const drive = async (self: Pusher, other: Pusher) => {
      for (let i = 0; i < N; i++) {
        await self.until(() => self.issued.length > i);
        if (other.issued.length < N) {
          const current = other.issued.length;
          await other.until(() => other.busy.has(current));
          contended++;
        }
        self.send('push');
        await self.until(() => self.pushed.length > i);
      }
      await self.until(() => self.done);
    };
    await Promise.all([drive(a, b), drive(b, a)]);
    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
    const issued = [...a.issued, ...b.issued].sort((x, y) => x - y);
    expect(issued).toEqual(Array.from({ length: 2 * N }, (_, i) => FIXED_MS + i));
    expect(contended).toBeGreaterThanOrEqual(N);
    expect(await stagesInRepository(repository, digest)).toEqual(issued);
  });

  it('without locks the same race collides (so the test above can fail)', async () => {
    const { a, b, repository, digest } = await twoPushers('none');
    // lockstep: both have listed and picked before either pushes
    for (let i = 0; i < N; i++) {
      await a.until(() => a.issued.length > i);
      await b.until(() => b.issued.length > i);
      a.send('push');
      b.send('push');
      await a.until(() => a.pushed.length > i);
      await b.until(() => b.pushed.length > i);
    }
    await a.until(() => a.done);
    await b.until(() => b.done);
    expect(a.issued).toEqual(b.issued);
    expect(new Set([...a.issued, ...b.issued]).size).toBe(N);
    expect(await stagesInRepository(repository, digest)).toHaveLength(N);
  });
});
