// The one suite every StagesStorage backend runs (acceptance check 2 of issue
// 13): docker-registry through the client, our server through the client, the
// image store directly, and the local storage. Each case gets a fresh project
// repository from `create()`. What applies to a backend is read from the
// storage's own `capabilities()` (and whether it is werf's `:local` storage):
// a case that does not apply is reported skipped with a `not applicable: …`
// note, never passed.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createImageStore } from '@stowage/image-store';
import { type Digest, isStowageError, MediaType, type Registry, RegistryError } from '@stowage/oci';
import { classifyTag, sha3_224Hash, type TagKind } from '@stowage/tags';
import { spyRegistry } from '@stowage/testing';
import { describe, expect, it } from 'vitest';
import type { StageDesc, StageID, StagesStorage, StagesStorageCapabilities } from '../src/types.js';
import {
  type BuiltImage,
  buildRecordImage,
  buildStageImage,
  expectedStageInfo,
  expectRecordImage,
  pushBuilt,
  readBlob,
  uuid,
} from './images.js';

export interface StagesStorageSubject {
  readonly storage: StagesStorage;
  /** The store the stages are in (the one `storage` was built over, before any wrapping). */
  readonly registry: Registry;
  /** The repository of `registry` that holds the stages. */
  readonly repository: string;
  /** Deletes a blob's bytes on disk behind the store's back (for the broken-image cases). */
  breakBlob?(digest: Digest): Promise<void>;
  cleanup(): Promise<void>;
}

export interface CreateSubjectOptions {
  /**
   * Wraps the registry the storage talks to (a counting proxy, a proxy that
   * refuses deletes); the subject's `registry` stays the unwrapped one.
   */
  readonly wrap?: (registry: Registry) => Registry;
}

export interface StagesStorageSuiteOptions {
  readonly name: string;
  /** A storage over a fresh project repository; called once per case (twice for copies). */
  readonly create: (options?: CreateSubjectOptions) => Promise<StagesStorageSubject>;
}

type BooleanCapability = {
  [K in keyof StagesStorageCapabilities]: StagesStorageCapabilities[K] extends boolean ? K : never;
}[keyof StagesStorageCapabilities];

/**
 * What a case needs: a capability true (`records`) or false (`!records`),
 * `breakBlob` (the subject can break a blob on disk), `repo` (a repo
 * storage, not werf's `:local` one) or `!repo`.
 */
type Need = BooleanCapability | `!${BooleanCapability}` | 'breakBlob' | 'repo' | '!repo';

function unmet(
  need: Need,
  subject: StagesStorageSubject,
  caps: StagesStorageCapabilities,
): string | undefined {
  const local = subject.storage.address === ':local';
  if (need === 'breakBlob')
    return subject.breakBlob ? undefined : 'breakBlob (the backend cannot break a blob)';
  if (need === 'repo') return local ? 'repo (the local storage)' : undefined;
  if (need === '!repo') return local ? undefined : 'the local storage only';
  if (need.startsWith('!')) {
    const name = need.slice(1) as BooleanCapability;
    return caps[name] === false ? undefined : `${name} is claimed`;
  }
  return caps[need as BooleanCapability] === true ? undefined : need;
}

/** The code of the `StowageError` a promise rejects with; anything else fails the case. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isStowageError(error)) return error.code;
    throw error;
  }
  throw new Error('expected the operation to fail, it succeeded');
}

/** Counts the calls made to a registry, without changing what it does. */
export function counted(registry: Registry): {
  registry: Registry;
  count(method: string): number;
  reset(): void;
} {
  const spy = spyRegistry(registry);
  return { registry: spy, count: (method) => spy.count(method), reset: () => spy.reset() };
}

/** A registry that says it cannot delete tags or manifests, and refuses both for real. */
function refusingDeletes(registry: Registry): Registry {
  return new Proxy(registry, {
    get(target, key) {
      if (key === 'capabilities') {
        return async (...args: unknown[]) => ({
          ...(await target.capabilities(...(args as Parameters<Registry['capabilities']>))),
          deleteTag: false,
          deleteManifest: false,
        });
      }
      if (key === 'deleteTag' || key === 'deleteManifest') {
        return async () => {
          throw new RegistryError('UNSUPPORTED', `this registry refuses ${String(key)}`);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

const PROJECT_COMMIT = '0123456789abcdef0123456789abcdef01234567';
const OTHER_COMMIT = '89abcdef0123456789abcdef0123456789abcdef';

let digestCounter = 0;
/** A fresh 56-hex stage digest (sha3-224 of something unique, as werf's are). */
function freshDigest(): string {
  return sha3_224Hash('stowage-suite', String(process.pid), String(Date.now()), String(++digestCounter));
}

function stageTagOf(stage: Pick<StageID, 'digest' | 'creationTs'>): string {
  return stage.creationTs === 0 ? stage.digest : `${stage.digest}-${stage.creationTs}`;
}

function expectKind(tag: string, kind: TagKind['kind']): TagKind {
  const classified = classifyTag(tag);
  expect(classified.kind, `classifyTag(${tag})`).toBe(kind);
  return classified;
}

async function tagsOf(registry: Registry, repository: string): Promise<string[]> {
  try {
    const out: string[] = [];
    let last: string | undefined;
    for (;;) {
      const page = await registry.listTags(repository, last === undefined ? {} : { last });
      out.push(...page.items);
      if (page.next === undefined || page.items.length === 0) return out;
      last = page.next;
    }
  } catch (error) {
    if (isStowageError(error, 'NAME_UNKNOWN')) return [];
    throw error;
  }
}

const byTs = (a: StageID, b: StageID) => a.creationTs - b.creationTs || (a.digest < b.digest ? -1 : 1);
const sortIds = (ids: readonly StageID[]) => [...ids].sort(byTs);

/** What one case works with. */
interface Case {
  readonly s: StagesStorageSubject;
  readonly storage: StagesStorage;
  readonly registry: Registry;
  readonly repository: string;
  readonly caps: StagesStorageCapabilities;
  /** `<address>` as it names images: the repo address, or the project for the local storage. */
  readonly imageAddress: string;
  readonly project: string;
  /** Another subject of the same backend (a fresh repository), cleaned up with the case. */
  another(options?: CreateSubjectOptions): Promise<StagesStorageSubject>;
  /** Pushes a stage image with werf's service labels under its stage tag; answers it and its ID. */
  stage(options?: {
    digest?: string;
    creationTs?: number;
    platform?: string;
    extraLabels?: Record<string, string>;
  }): Promise<{ stage: StageID; image: BuiltImage; tag: string }>;
  /** Writes a record tag raw (a record image built by hand), as werf would have. */
  rawRecord(tag: string, labels?: Record<string, string>): Promise<void>;
}

export function stagesStorageSuite(options: StagesStorageSuiteOptions): void {
  let tsCounter = 1_700_000_000_000;

  /** Registers a case that runs in a fresh project repository, skipped with the reason where it does not apply. */
  function test(
    title: string,
    needs: readonly Need[],
    fn: (c: Case) => Promise<void>,
    timeout?: number,
  ): void {
    it(
      title,
      async (context) => {
        const subjects: StagesStorageSubject[] = [];
        const another = async (o?: CreateSubjectOptions) => {
          const created = await options.create(o);
          subjects.push(created);
          return created;
        };
        try {
          const s = await another();
          const caps = await s.storage.capabilities();
          const reasons = needs.map((need) => unmet(need, s, caps)).filter((r) => r !== undefined);
          if (reasons.length > 0) {
            (context.task.meta as { notApplicable?: readonly string[] }).notApplicable = reasons;
            context.skip(`not applicable: ${reasons.join(', ')}`);
            return;
          }
          const storage = s.storage;
          const imageAddress = storage.address === ':local' ? storage.project : storage.address;
          const c: Case = {
            s,
            storage,
            registry: s.registry,
            repository: s.repository,
            caps,
            imageAddress,
            project: storage.project,
            another,
            async stage(o = {}) {
              const stage: StageID = {
                digest: o.digest ?? freshDigest(),
                creationTs: o.creationTs ?? ++tsCounter,
                isMultiplatform: false,
              };
              const image = buildStageImage({
                labels: {
                  werf: storage.project,
                  'werf-version': 'v2.77.1',
                  'werf-stage-content-digest': sha3_224Hash('content', stage.digest),
                  'werf.io/parent-stage-id': `${freshDigest()}-1699999999999`,
                  'werf.io/base-image-id': `sha256:${'b'.repeat(64)}`,
                  'org.opencontainers.image.title': 'kept',
                  ...o.extraLabels,
                },
                env: ['PATH=/usr/bin:/bin', 'WERF_TEST=1'],
                onBuild: ['RUN echo onbuild'],
                volumes: { '/data': {} },
                ...(o.platform ? { platform: o.platform } : {}),
              });
              const tag = stageTagOf(stage);
              await pushBuilt(s.registry, s.repository, image, tag);
              return { stage, image, tag };
            },
            async rawRecord(tag, labels = { werf: storage.project }) {
              await pushBuilt(s.registry, s.repository, buildRecordImage(labels, 'zero-byte'), tag);
            },
          };
          await fn(c);
        } finally {
          for (const subject of subjects.reverse()) await subject.cleanup();
        }
      },
      timeout,
    );
  }

  const descOf = async (c: Case, stage: StageID): Promise<StageDesc> => {
    const desc = await c.storage.getStageDesc(stage);
    if (!desc) throw new Error(`getStageDesc(${stageTagOf(stage)}) answered null for a stage just pushed`);
    return desc;
  };

  describe(`StagesStorage: ${options.name}`, () => {
    describe('stage names and IDs', () => {
      test('address, project, location, stageTag and stageImageName', [], async (c) => {
        const digest = freshDigest();
        expect(c.storage.stageTag({ digest, creationTs: 1700000000123 })).toBe(`${digest}-1700000000123`);
        expect(c.storage.stageTag({ digest, creationTs: 0 })).toBe(digest);
        expect(c.storage.stageImageName({ digest, creationTs: 1700000000123 })).toBe(
          `${c.imageAddress}:${digest}-1700000000123`,
        );
        expect(c.storage.stageImageName({ digest, creationTs: 0 })).toBe(`${c.imageAddress}:${digest}`);
        expect(c.storage.location.repository).toBe(c.repository);
        expect(c.project).not.toBe('');
        if (c.storage.address === ':local') expect(c.repository).toBe(c.project);
        expectKind(c.storage.stageTag({ digest, creationTs: 1700000000123 }), 'stage');
        expectKind(c.storage.stageTag({ digest, creationTs: 0 }), 'multiplatform-stage');
      });
    });

    describe('listStageIDs', () => {
      test('lists the stages and only them (records, rejected and junk tags skipped)', [], async (c) => {
        const a = await c.stage();
        const b = await c.stage();
        const same = await c.stage({ digest: a.stage.digest });
        const mp = freshDigest();
        await c.rawRecord(mp); // a bare 56-char digest tag: a multiplatform stage to a repo storage
        await c.rawRecord(`${b.tag}-rejected`);
        await c.rawRecord('managed-image-backend');
        await c.rawRecord(`meta-27dba8ed_${PROJECT_COMMIT}_${a.tag}`);
        await c.rawRecord('latest');
        await c.rawRecord(`${'c'.repeat(27)}-${'d'.repeat(28)}`); // 56 chars with a dash
        await c.rawRecord(`${'e'.repeat(56)}-170000000-0001`); // 70 chars, two dashes
        await c.rawRecord(`${'f'.repeat(56)}-abcdefghijklm`); // 70 chars, tail not a number
        const expected = [a.stage, b.stage, same.stage];
        // werf's local listing keeps only `<digest>-<ts>` tags (spec A.11); a repo storage keeps bare digests too
        if (c.storage.address !== ':local')
          expected.push({ digest: mp, creationTs: 0, isMultiplatform: true });
        expect(sortIds(await c.storage.listStageIDs())).toEqual(sortIds(expected));
      });

      test('an empty repository has no stages', [], async (c) => {
        expect(await c.storage.listStageIDs()).toEqual([]);
      });
    });

    describe('listStageIDsByDigest', () => {
      test('the stages of one digest, filtered by parentCreationTs', [], async (c) => {
        const digest = freshDigest();
        const s1 = await c.stage({ digest, creationTs: 1700000000001 });
        const s5 = await c.stage({ digest, creationTs: 1700000000005 });
        const s9 = await c.stage({ digest, creationTs: 1700000000009 });
        await c.stage(); // another digest
        await c.rawRecord(`${digest}-notanumber`); // same prefix, junk
        expect(sortIds(await c.storage.listStageIDsByDigest(digest))).toEqual([s1.stage, s5.stage, s9.stage]);
        expect(
          sortIds(await c.storage.listStageIDsByDigest(digest, { parentCreationTs: 1700000000005 })),
        ).toEqual([s5.stage, s9.stage]);
        expect(await c.storage.listStageIDsByDigest(digest, { parentCreationTs: 1700000000010 })).toEqual([]);
        expect(await c.storage.listStageIDsByDigest(freshDigest())).toEqual([]);
      });

      test('rejected stages are left out', ['records'], async (c) => {
        const digest = freshDigest();
        const s1 = await c.stage({ digest, creationTs: 1700000000001 });
        const s2 = await c.stage({ digest, creationTs: 1700000000002 });
        await c.rawRecord(`${s1.tag}-rejected`);
        expect(sortIds(await c.storage.listStageIDsByDigest(digest))).toEqual([s2.stage]);
      });
    });

    describe('getStageDesc', () => {
      test('a stage: every ImageInfo field', [], async (c) => {
        const { stage, image, tag } = await c.stage();
        const desc = await c.storage.getStageDesc(stage);
        expect(desc).not.toBeNull();
        expect(desc?.stageID).toEqual(stage);
        expect(desc?.info).toEqual(expectedStageInfo(image, c.imageAddress, tag));
        // cached read answers the same
        expect(await c.storage.getStageDesc(stage, { cache: true })).toEqual(desc);
      });

      test('config.Image is the parent ID when set', [], async (c) => {
        const stage: StageID = { digest: freshDigest(), creationTs: 1700000000077, isMultiplatform: false };
        const image = buildStageImage({
          labels: { werf: c.project, 'werf.io/base-image-id': `sha256:${'b'.repeat(64)}` },
          parentImage: `sha256:${'a'.repeat(64)}`,
          created: '2023-01-02T03:04:05Z',
          format: 'oci',
        });
        await pushBuilt(c.registry, c.repository, image, stageTagOf(stage));
        const desc = await descOf(c, stage);
        expect(desc.info).toEqual(expectedStageInfo(image, c.imageAddress, stageTagOf(stage)));
        expect(desc.info.parentId).toBe(`sha256:${'a'.repeat(64)}`);
        expect(desc.info.createdAtUnixNano).toBe(1672628645 * 1e9);
        expect(desc.info.onBuild).toBeNull();
        expect(desc.info.env).toBeNull();
        expect(desc.info.volumes).toBeNull();
      });

      test('a missing stage is null', [], async (c) => {
        await c.stage();
        expect(await c.storage.getStageDesc({ digest: freshDigest(), creationTs: 1700000000123 })).toBeNull();
      });

      test('a missing stage in a repository that does not exist yet is null', [], async (c) => {
        expect(await c.storage.getStageDesc({ digest: freshDigest(), creationTs: 1700000000123 })).toBeNull();
      });

      test('a rejected stage is null', ['records'], async (c) => {
        const { stage, tag } = await c.stage();
        await c.rawRecord(`${tag}-rejected`);
        expect(await c.storage.getStageDesc(stage)).toBeNull();
        expect(await c.storage.getStageDesc(stage, { cache: true })).toBeNull();
      });

      test('a stage whose config blob is gone is BROKEN_IMAGE', ['breakBlob'], async (c) => {
        const { stage, image } = await c.stage();
        await c.s.breakBlob?.(image.config.digest);
        expect(await codeOf(c.storage.getStageDesc(stage))).toBe('BROKEN_IMAGE');
      });

      test(
        'a multiplatform stage whose child manifest is gone is BROKEN_IMAGE',
        ['repo', 'deleteManifest'],
        async (c) => {
          const amd = await c.stage({ platform: 'linux/amd64' });
          const arm = await c.stage({ platform: 'linux/arm64' });
          const tag = sha3_224Hash(amd.tag, arm.tag);
          await c.storage.postMultiplatformImage({
            tag,
            images: [await descOf(c, amd.stage), await descOf(c, arm.stage)],
          });
          await c.registry.deleteManifest(c.repository, arm.image.manifest.digest);
          expect(await codeOf(c.storage.getStageDesc({ digest: tag, creationTs: 0 }))).toBe('BROKEN_IMAGE');
        },
      );
    });

    describe('deleteStage', () => {
      test('deletes the stage image and its rejected record', ['deleteManifest', 'records'], async (c) => {
        const { stage, tag } = await c.stage();
        const kept = await c.stage({ digest: stage.digest });
        const desc = await descOf(c, stage);
        await c.rawRecord(`${tag}-rejected`);
        await c.storage.deleteStage(desc);
        const tags = await tagsOf(c.registry, c.repository);
        expect(tags).not.toContain(tag);
        expect(tags).not.toContain(`${tag}-rejected`);
        expect(tags).toContain(kept.tag);
        expect(await c.registry.headManifest(c.repository, tag)).toBeUndefined();
        expect(sortIds(await c.storage.listStageIDs())).toEqual([kept.stage]);
        expect(await c.storage.getStageDesc(stage)).toBeNull();
        // absent is success
        await c.storage.deleteStage(desc);
      });

      test('deletes a stage (no rejected record)', ['deleteManifest'], async (c) => {
        const { stage, tag } = await c.stage();
        const desc = await descOf(c, stage);
        await c.storage.deleteStage(desc);
        expect(await tagsOf(c.registry, c.repository)).not.toContain(tag);
        expect(await c.storage.listStageIDs()).toEqual([]);
      });

      test('a custom tag on the stage keeps its manifest', ['deleteManifest', 'records'], async (c) => {
        const { stage, image, tag } = await c.stage();
        const desc = await descOf(c, stage);
        await c.storage.addCustomTag(desc, 'release-keep');
        await c.storage.deleteStage(desc);
        const tags = await tagsOf(c.registry, c.repository);
        expect(tags).not.toContain(tag);
        expect((await c.registry.headManifest(c.repository, 'release-keep'))?.digest).toBe(
          image.manifest.digest,
        );
        expect((await c.registry.getManifest(c.repository, image.manifest.digest)).digest).toBe(
          image.manifest.digest,
        );
      });

      test('a registry that cannot delete: DELETE_REFUSED, nothing removed', ['repo'], async (c) => {
        const refusing = await c.another({ wrap: refusingDeletes });
        const caps = await refusing.storage.capabilities();
        expect(caps.deleteManifest).toBe(false);
        expect(caps.deleteTag).toBe(false);
        expect(caps.deleteRepo).toBe(false);
        const image = buildStageImage({ labels: { werf: refusing.storage.project } });
        const stage: StageID = { digest: freshDigest(), creationTs: 1700000000042, isMultiplatform: false };
        await pushBuilt(refusing.registry, refusing.repository, image, stageTagOf(stage));
        const desc = await refusing.storage.getStageDesc(stage);
        expect(desc).not.toBeNull();
        let error: unknown;
        try {
          await refusing.storage.deleteStage(desc as StageDesc);
        } catch (e) {
          error = e;
        }
        expect(isStowageError(error, 'DELETE_REFUSED'), `deleteStage rejected with ${String(error)}`).toBe(
          true,
        );
        expect(String((error as Error).message)).toContain(stageTagOf(stage));
        expect(await tagsOf(refusing.registry, refusing.repository)).toContain(stageTagOf(stage));
      });
    });

    describe('rejectStage', () => {
      test('writes the rejected record; the stage reads as rejected', ['records'], async (c) => {
        const { stage, tag } = await c.stage();
        const other = await c.stage({ digest: stage.digest });
        // a cached listing before the write: the write must keep it current
        expect(sortIds(await c.storage.listStageIDsByDigest(stage.digest, { cache: true }))).toEqual(
          sortIds([stage, other.stage]),
        );
        await c.storage.rejectStage(stage);
        const rejectedTag = `${tag}-rejected`;
        expect(await tagsOf(c.registry, c.repository)).toContain(rejectedTag);
        const kind = expectKind(rejectedTag, 'rejected');
        expect(kind).toMatchObject({ digest: stage.digest, creationTs: stage.creationTs });
        await expectRecordImage(c.registry, c.repository, rejectedTag, { werf: c.project });
        expect(await c.storage.getStageDesc(stage)).toBeNull();
        expect(await c.storage.listStageIDsByDigest(stage.digest, { cache: true })).toEqual([other.stage]);
        expect(await c.storage.getStageDesc(stage, { cache: true })).toBeNull();
        expect(await c.storage.listStageIDsByDigest(stage.digest)).toEqual([other.stage]);
      });
    });

    describe('createRepo and deleteRepo', () => {
      test('createRepo as the capabilities say', [], async (c) => {
        if (c.caps.createRepo === 'implicit') {
          await c.storage.createRepo();
          expect(await c.storage.listStageIDs()).toEqual([]);
        } else {
          expect(await codeOf(c.storage.createRepo())).toBe('UNSUPPORTED');
        }
      });

      test('deleteRepo removes every stage and record', ['deleteRepo'], async (c) => {
        await c.stage();
        const { stage } = await c.stage();
        const manifest = await c.registry.getManifest(c.repository, stageTagOf(stage));
        await c.registry.putManifest(c.repository, 'custom', {
          bytes: manifest.bytes,
          mediaType: manifest.mediaType,
        });
        await c.rawRecord('managed-image-backend');
        await c.storage.deleteRepo();
        expect(await c.storage.listStageIDs()).toEqual([]);
        expect(await tagsOf(c.registry, c.repository)).toEqual([]);
        // deleting again (nothing left) is fine
        await c.storage.deleteRepo();
      });

      test('deleteRepo where manifests cannot be deleted fails with UNSUPPORTED', ['repo'], async (c) => {
        const refusing = await c.another({ wrap: refusingDeletes });
        const image = buildStageImage({ labels: { werf: refusing.storage.project } });
        const tag = `${freshDigest()}-1700000000001`;
        await pushBuilt(refusing.registry, refusing.repository, image, tag);
        expect((await refusing.storage.capabilities()).deleteRepo).toBe(false);
        expect(await codeOf(refusing.storage.deleteRepo())).toBe('UNSUPPORTED');
        expect(await tagsOf(refusing.registry, refusing.repository)).toEqual([tag]);
      });

      test('a storage that declares deleteRepo false refuses it', ['!deleteRepo'], async (c) => {
        expect(await codeOf(c.storage.deleteRepo())).toBe('UNSUPPORTED');
      });
    });

    describe('exportStage', () => {
      /** The registry, recording the digest of every blob put into it. */
      const recordingPuts = (registry: Registry): { registry: Registry; puts: Digest[] } => {
        const puts: Digest[] = [];
        const proxy = new Proxy(registry, {
          get(target, key) {
            const value = Reflect.get(target, key, target);
            if (typeof value !== 'function') return value;
            if (key === 'putBlob') {
              return (repository: string, body: unknown, o: { digest: Digest }) => {
                puts.push(o.digest);
                return value.call(target, repository, body, o);
              };
            }
            return value.bind(target);
          },
        });
        return { registry: proxy, puts };
      };

      const exportCase = async (c: Case, target: Registry, repository: string): Promise<Digest[]> => {
        const { registry: destination, puts } = recordingPuts(target);
        const { stage, image } = await c.stage({
          extraLabels: { 'werf-cache-version': '1.2', werfish: 'x' },
        });
        const desc = await descOf(c, stage);
        const result = await c.storage.exportStage(desc, {
          destination: { registry: destination, repository, tag: 'exported' },
          mutateConfig: (config) => ({
            ...config,
            Env: [...((config.Env as string[] | undefined) ?? []), 'EXPORTED=1'],
          }),
        });
        const head = await destination.headManifest(repository, 'exported');
        expect(head?.digest).toBe(result.digest);
        expect(result.mediaType).toBe(image.manifest.mediaType);
        const manifest = await destination.getManifest(repository, 'exported');
        const m = JSON.parse(Buffer.from(manifest.bytes).toString()) as {
          config: { digest: Digest };
          layers: { digest: Digest; size: number; mediaType: string }[];
        };
        expect(m.layers.map((l) => l.digest)).toEqual(image.layers.map((l) => l.digest));
        for (const layer of image.layers) {
          const there = await destination.headBlob(repository, layer.digest);
          expect(there?.size, `layer ${layer.digest} at the destination`).toBe(layer.size);
          expect(Buffer.from(await readBlob(destination, repository, layer.digest))).toEqual(
            Buffer.from(layer.bytes),
          );
        }
        expect(m.config.digest).not.toBe(image.config.digest);
        const config = JSON.parse(
          Buffer.from(await readBlob(destination, repository, m.config.digest)).toString(),
        ) as {
          config: { Labels?: Record<string, string>; Env?: string[]; OnBuild?: string[] };
          rootfs: unknown;
          architecture: string;
        };
        expect(config.config.Labels).toEqual({ 'org.opencontainers.image.title': 'kept' });
        expect(config.config.Env).toEqual(['PATH=/usr/bin:/bin', 'WERF_TEST=1', 'EXPORTED=1']);
        expect(config.config.OnBuild).toEqual(['RUN echo onbuild']);
        expect(config.rootfs).toEqual(image.configJson.rootfs);
        expect(config.architecture).toBe('amd64');
        // the stage itself is untouched
        expect(await c.storage.getStageDesc(stage)).toEqual(desc);
        // each layer goes to the destination at most once
        for (const layer of image.layers)
          expect(puts.filter((d) => d === layer.digest).length).toBeLessThanOrEqual(1);
        return image.layers.map((l) => l.digest).filter((d) => puts.includes(d));
      };

      test(
        'to another repository of the same store (layers mounted, not moved, where it mounts)',
        [],
        async (c) => {
          const streamed = await exportCase(c, c.registry, `${c.repository}-export`);
          if ((await c.registry.capabilities()).mount) expect(streamed).toEqual([]);
        },
      );

      test('to another store', [], async (c) => {
        const root = await mkdtemp(join(tmpdir(), 'stowage-suite-export-'));
        const other = await createImageStore({ root });
        try {
          const streamed = await exportCase(c, other, 'exported/app');
          expect(streamed).toHaveLength(2); // another origin: each layer copied, once
        } finally {
          await other.close();
          await rm(root, { recursive: true, force: true });
        }
      });
      test(
        'a multiplatform stage: each child exported, a new list with the platforms kept',
        ['repo'],
        async (c) => {
          const amd = await c.stage({ platform: 'linux/amd64' });
          const arm = await c.stage({ platform: 'linux/arm64' });
          const tag = sha3_224Hash(amd.tag, arm.tag);
          const mp = await c.storage.postMultiplatformImage({
            tag,
            images: [await descOf(c, amd.stage), await descOf(c, arm.stage)],
          });
          const repository = `${c.repository}-export-mp`;
          const result = await c.storage.exportStage(mp, {
            destination: { registry: c.registry, repository, tag: 'exported' },
          });
          const raw = await c.registry.getManifest(repository, 'exported');
          expect(raw.digest).toBe(result.digest);
          expect(result.mediaType).toBe(MediaType.DockerManifestList);
          const list = JSON.parse(Buffer.from(raw.bytes).toString()) as {
            manifests: { digest: Digest; platform: { architecture: string; os: string } }[];
          };
          expect(list.manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
          for (const [i, child] of list.manifests.entries()) {
            const source = [amd.image, arm.image][i] as BuiltImage;
            expect(child.digest).not.toBe(source.manifest.digest);
            const m = JSON.parse(
              Buffer.from((await c.registry.getManifest(repository, child.digest)).bytes).toString(),
            ) as {
              config: { digest: Digest };
              layers: { digest: Digest }[];
            };
            expect(m.layers.map((l) => l.digest)).toEqual(source.layers.map((l) => l.digest));
            const config = JSON.parse(
              Buffer.from(await readBlob(c.registry, repository, m.config.digest)).toString(),
            ) as {
              config: { Labels?: Record<string, string> };
            };
            expect(config.config.Labels).toEqual({ 'org.opencontainers.image.title': 'kept' });
          }
        },
      );
    });

    describe('custom tags', () => {
      test('add, check and delete a custom tag; the stage stays', ['records'], async (c) => {
        const { stage, image, tag } = await c.stage();
        const other = await c.stage();
        const desc = await descOf(c, stage);
        await c.storage.addCustomTag(desc, 'v1.2.3');
        expect(expectKind('v1.2.3', 'other')).toEqual({ kind: 'other' });
        expect((await c.registry.headManifest(c.repository, 'v1.2.3'))?.digest).toBe(image.manifest.digest);
        await c.storage.checkCustomTag(desc, 'v1.2.3');
        expect(await codeOf(c.storage.checkCustomTag(desc, 'absent-tag'))).toBe('CUSTOM_TAG_NOT_FOUND');
        await c.storage.addCustomTag(await descOf(c, other.stage), 'points-elsewhere');
        expect(await codeOf(c.storage.checkCustomTag(desc, 'points-elsewhere'))).toBe('CUSTOM_TAG_MISMATCH');
        // custom tags are not stages
        expect(sortIds(await c.storage.listStageIDs())).toEqual(sortIds([stage, other.stage]));

        await c.storage.deleteCustomTag('v1.2.3');
        const tags = await tagsOf(c.registry, c.repository);
        expect(tags).not.toContain('v1.2.3');
        expect(tags).toContain(tag);
        expect(await c.storage.getStageDesc(stage)).toEqual(desc);
        expect((await c.registry.getManifest(c.repository, image.manifest.digest)).digest).toBe(
          image.manifest.digest,
        );
        expect(await codeOf(c.storage.checkCustomTag(desc, 'v1.2.3'))).toBe('CUSTOM_TAG_NOT_FOUND');
        // absent is success
        await c.storage.deleteCustomTag('v1.2.3');
        await c.storage.deleteCustomTag('never-there');
        // the other custom tag and its stage are intact
        expect(await tagsOf(c.registry, c.repository)).toContain('points-elsewhere');
      });

      test('register, get, list and unregister custom tag metadata', ['records'], async (c) => {
        const { stage } = await c.stage();
        const desc = await descOf(c, stage);
        const stageId = stageTagOf(stage);
        await c.storage.registerCustomTag(desc, 'v1.2.3');
        await c.storage.registerCustomTag(desc, 'main');
        const record = 'custom-tag-meta-v1-2-3-cce060b5'; // spec A.13 ex. 5
        expect(await tagsOf(c.registry, c.repository)).toContain(record);
        expect(expectKind(record, 'custom-tag-meta')).toMatchObject({ id: 'v1-2-3-cce060b5' });
        expectKind('custom-tag-meta-main', 'custom-tag-meta');
        await expectRecordImage(c.registry, c.repository, record, {
          werf: c.project,
          'stage-id': stageId,
          tag: 'v1.2.3',
        });
        expect(await c.storage.getCustomTagMetadata('v1.2.3')).toEqual({ stageId, tag: 'v1.2.3' });
        expect(await c.storage.getCustomTagMetadata('v1-2-3-cce060b5')).toEqual({ stageId, tag: 'v1.2.3' });
        expect(await c.storage.getCustomTagMetadata('main')).toEqual({ stageId, tag: 'main' });
        expect(await c.storage.getCustomTagMetadata('never')).toBeNull();
        expect([...(await c.storage.listCustomTagMetadataIds())].sort()).toEqual(['main', 'v1-2-3-cce060b5']);
        await c.storage.unregisterCustomTag('v1.2.3');
        expect(await c.storage.getCustomTagMetadata('v1.2.3')).toBeNull();
        expect(await c.storage.listCustomTagMetadataIds()).toEqual(['main']);
        await c.storage.unregisterCustomTag('main');
        expect(await c.storage.listCustomTagMetadataIds()).toEqual([]);
        // absent is success; the stage is untouched
        await c.storage.unregisterCustomTag('main');
        expect(await c.storage.getStageDesc(stage)).toEqual(desc);
      });
    });

    describe('managed images', () => {
      test(
        'records that share one manifest (as werf may have written them): removing one keeps the other',
        ['records'],
        async (c) => {
          const shared = buildRecordImage({ werf: c.project }, 'zero-byte', '2024-01-01T00:00:00Z');
          await pushBuilt(c.registry, c.repository, shared, 'managed-image-first');
          await pushBuilt(c.registry, c.repository, shared, 'managed-image-second');
          await pushBuilt(
            c.registry,
            c.repository,
            shared,
            `meta-27dba8ed_${PROJECT_COMMIT}_${freshDigest()}-1700000000001`,
          );
          await c.storage.removeManagedImage('first');
          expect(await c.storage.managedImageExists('first')).toBe(false);
          expect(await c.storage.managedImageExists('second')).toBe(true);
          const tags = await tagsOf(c.registry, c.repository);
          expect(tags).toContain('managed-image-second');
          expect(tags.filter((t) => t.startsWith('meta-'))).toHaveLength(1);
        },
      );

      test('add, exists, list and remove', ['records'], async (c) => {
        const names = ['backend', 'frontend/app', '', 'my image+x'];
        for (const name of names) await c.storage.addManagedImage(name);
        const expectedTags = {
          backend: 'managed-image-backend',
          'frontend/app': 'managed-image-frontend__slash__app',
          '': 'managed-image-__nameless__',
          'my image+x': 'managed-image-my__space__image__plus__x',
        } as const;
        const tags = await tagsOf(c.registry, c.repository);
        for (const [name, tag] of Object.entries(expectedTags)) {
          expect(tags).toContain(tag);
          expect(expectKind(tag, 'managed-image')).toMatchObject({ imageName: name });
        }
        await expectRecordImage(c.registry, c.repository, 'managed-image-__nameless__', { werf: c.project });
        for (const name of names) {
          expect(await c.storage.managedImageExists(name), `exists ${name}`).toBe(true);
          expect(await c.storage.managedImageExists(name, { cache: true })).toBe(true);
        }
        expect(await c.storage.managedImageExists('never')).toBe(false);
        expect([...(await c.storage.listManagedImages())].sort()).toEqual([...names].sort());
        // werf takes a managed image name too (the ID form), idempotent
        await c.storage.removeManagedImage('frontend/app');
        expect(await c.storage.managedImageExists('frontend/app')).toBe(false);
        expect(await c.storage.managedImageExists('frontend/app', { cache: true })).toBe(false);
        expect([...(await c.storage.listManagedImages())].sort()).toEqual(['', 'backend', 'my image+x']);
        await c.storage.removeManagedImage('frontend/app'); // absent is success
        await c.storage.removeManagedImage('');
        expect([...(await c.storage.listManagedImages({ cache: true }))].sort()).toEqual([
          'backend',
          'my image+x',
        ]);
      });
    });

    describe('image metadata', () => {
      test(
        'put, exists, list grouped (with notManaged), remove by name and by metadata ID',
        ['records'],
        async (c) => {
          const s1 = `${freshDigest()}-1700000000123`;
          const mp = freshDigest();
          const backend1 = { imageName: 'backend', commit: PROJECT_COMMIT, stageId: s1 };
          const backend2 = { imageName: 'backend', commit: OTHER_COMMIT, stageId: s1 };
          const front = { imageName: 'frontend/app', commit: PROJECT_COMMIT, stageId: mp };
          for (const key of [backend1, backend2, front]) await c.storage.putImageMetadata(key);
          const tag1 = `meta-27dba8ed_${PROJECT_COMMIT}_${s1}`;
          const tagFront = `meta-a5320b24_${PROJECT_COMMIT}_${mp}`;
          const tags = await tagsOf(c.registry, c.repository);
          expect(tags).toContain(tag1);
          expect(tags).toContain(`meta-27dba8ed_${OTHER_COMMIT}_${s1}`);
          expect(tags).toContain(tagFront);
          expect(expectKind(tag1, 'meta')).toMatchObject({
            imageMetadataId: '27dba8ed',
            commit: PROJECT_COMMIT,
            stageId: s1,
          });
          await expectRecordImage(c.registry, c.repository, tag1, { werf: c.project });
          await c.rawRecord('meta-bad');
          await c.rawRecord('meta-x_y');

          expect(await c.storage.imageMetadataExists(backend1)).toBe(true);
          expect(await c.storage.imageMetadataExists(front, { cache: true })).toBe(true);
          expect(await c.storage.imageMetadataExists({ ...front, commit: OTHER_COMMIT })).toBe(false);

          const listing = await c.storage.listImageMetadata(['backend']);
          expect(listing.managed).toEqual(
            new Map([['backend', new Map([[s1, [PROJECT_COMMIT, OTHER_COMMIT].sort()]])]]),
          );
          expect(listing.notManaged).toEqual(new Map([['a5320b24', new Map([[mp, [PROJECT_COMMIT]]])]]));
          const both = await c.storage.listImageMetadata(['backend', 'frontend/app'], { cache: true });
          expect([...both.managed.keys()].sort()).toEqual(['backend', 'frontend/app']);
          expect(both.notManaged.size).toBe(0);

          await c.storage.removeImageMetadata(backend2);
          expect(await c.storage.imageMetadataExists(backend2)).toBe(false);
          expect(await c.storage.imageMetadataExists(backend1)).toBe(true);
          // by the raw metadata ID, as werf falls back to
          await c.storage.removeImageMetadata({ imageName: 'a5320b24', commit: PROJECT_COMMIT, stageId: mp });
          expect(await c.storage.imageMetadataExists(front)).toBe(false);
          expect(await tagsOf(c.registry, c.repository)).not.toContain(tagFront);
          // absent is success
          await c.storage.removeImageMetadata(front);
          const after = await c.storage.listImageMetadata(['backend']);
          expect(after.managed).toEqual(new Map([['backend', new Map([[s1, [PROJECT_COMMIT]]])]]));
          expect(after.notManaged.size).toBe(0);
        },
      );
    });

    describe('import metadata', () => {
      const id = '3eb93ace11926614557246024803002ff4e7aea519969acaa7572ef30ed5fd35'; // spec A.13 ex. 6
      test('put, get, skip when present unless force, list, remove', [], async (c) => {
        const metadata = {
          importSourceId: id,
          sourceStageId: `${freshDigest()}-1700000000123`,
          checksum: 'abc123',
        };
        expect(await c.storage.getImportMetadata(id)).toBeNull();
        await c.storage.putImportMetadata(metadata);
        expect(await c.storage.getImportMetadata(id)).toEqual(metadata);
        const labels = {
          werf: c.project,
          'import-source-id': id,
          'source-stage-id': metadata.sourceStageId,
          checksum: 'abc123',
        };
        if (c.storage.address === ':local') {
          await expectRecordImage(c.registry, `werf-import-metadata/${c.project}`, id, labels);
        } else {
          const tag = `import-metadata-${id}`;
          expect(tag).toHaveLength(80);
          expect(expectKind(tag, 'import-metadata')).toMatchObject({ importSourceId: id });
          await expectRecordImage(c.registry, c.repository, tag, labels);
        }
        await c.storage.putImportMetadata({ ...metadata, checksum: 'changed' });
        expect(await c.storage.getImportMetadata(id)).toEqual(metadata);
        await c.storage.putImportMetadata({ ...metadata, checksum: 'forced' }, { force: true });
        expect(await c.storage.getImportMetadata(id)).toEqual({ ...metadata, checksum: 'forced' });
        const other = `${'0'.repeat(63)}1`;
        await c.storage.putImportMetadata({ importSourceId: other, sourceStageId: 'x', checksum: '' });
        expect([...(await c.storage.listImportMetadataIds())].sort()).toEqual([other, id].sort());
        await c.storage.removeImportMetadata(id);
        expect(await c.storage.getImportMetadata(id)).toBeNull();
        expect(await c.storage.listImportMetadataIds()).toEqual([other]);
        await c.storage.removeImportMetadata(id); // absent is success
      });

      test('the old source-image-id label is read too', ['repo'], async (c) => {
        await c.rawRecord(`import-metadata-${id}`, {
          werf: c.project,
          'import-source-id': id,
          'source-image-id': 'old-stage-id',
          checksum: 'sum',
        });
        expect(await c.storage.getImportMetadata(id)).toEqual({
          importSourceId: id,
          sourceStageId: 'old-stage-id',
          checksum: 'sum',
        });
      });
    });

    describe('client IDs, sync server and cleanup records', () => {
      test('client ID records: post and list (junk skipped)', ['records'], async (c) => {
        const a = { clientId: uuid(), timestampMillisec: 3400000000246 };
        const b = { clientId: uuid(), timestampMillisec: 3400000000100 };
        await c.storage.postClientIdRecord(a);
        await c.storage.postClientIdRecord(b);
        const tag = `client-id-${a.clientId}-${a.timestampMillisec}`;
        expect(await tagsOf(c.registry, c.repository)).toContain(tag);
        expect(expectKind(tag, 'client-id')).toMatchObject({
          clientId: a.clientId,
          timestampMs: a.timestampMillisec,
        });
        await expectRecordImage(c.registry, c.repository, tag, { werf: c.project });
        await c.rawRecord('client-id-x');
        await c.rawRecord('client-id-abc-notanumber');
        const listed = await c.storage.listClientIdRecords();
        expect([...listed].sort((x, y) => x.timestampMillisec - y.timestampMillisec)).toEqual([b, a]);
      });

      test('sync-server record: post and get', ['records'], async (c) => {
        expect(await c.storage.getSyncServerRecord()).toBeNull();
        const record = { server: 'https://sync.example.com', timestampMillisec: 3400000000500 };
        await c.storage.postSyncServerRecord(record);
        expect(expectKind('sync-server', 'sync-server')).toEqual({ kind: 'sync-server' });
        await expectRecordImage(c.registry, c.repository, 'sync-server', {
          werf: c.project,
          syncserver: 'https://sync.example.com',
          syncservertimestamp: '3400000000500',
        });
        expect(await c.storage.getSyncServerRecord()).toEqual(record);
        expect(await c.storage.getSyncServerRecord({ cache: true })).toEqual(record);
      });

      test('cleanup record: post and get', ['records'], async (c) => {
        expect(await c.storage.getCleanupRecord()).toBeNull();
        await c.storage.postCleanupRecord({ timestampMillisec: 1700000000999 });
        expectKind('cleanup', 'cleanup');
        await expectRecordImage(c.registry, c.repository, 'cleanup', {
          werf: c.project,
          lastcleanuptimestamp: '1700000000999',
        });
        expect(await c.storage.getCleanupRecord()).toEqual({ timestampMillisec: 1700000000999 });
      });

      test('the local storage keeps no records: writes are no-ops, reads empty', ['!records'], async (c) => {
        const { stage } = await c.stage();
        await c.storage.rejectStage(stage);
        expect(await c.storage.getStageDesc(stage)).not.toBeNull();
        await c.storage.addManagedImage('backend');
        expect(await c.storage.listManagedImages()).toEqual([]);
        expect(await c.storage.managedImageExists('backend')).toBe(false);
        const key = { imageName: 'backend', commit: PROJECT_COMMIT, stageId: stageTagOf(stage) };
        await c.storage.putImageMetadata(key);
        expect(await c.storage.imageMetadataExists(key)).toBe(false);
        const listing = await c.storage.listImageMetadata(['backend']);
        expect(listing.managed.size + listing.notManaged.size).toBe(0);
        await c.storage.postClientIdRecord({ clientId: uuid(), timestampMillisec: 1 });
        expect(await c.storage.listClientIdRecords()).toEqual([]);
        expect(await tagsOf(c.registry, c.repository)).toEqual([stageTagOf(stage)]);
      });
    });

    describe('postMultiplatformImage', () => {
      test('a Docker manifest list under the multiplatform digest', ['repo'], async (c) => {
        const amd = await c.stage({ platform: 'linux/amd64' });
        const arm = await c.stage({ platform: 'linux/arm64/v8' });
        const images = [await descOf(c, amd.stage), await descOf(c, arm.stage)];
        // spec A.3: sha3-224 over the per-platform stage IDs, platforms sorted
        const tag = sha3_224Hash(amd.tag, arm.tag);
        const desc = await c.storage.postMultiplatformImage({ tag, images });
        expect(expectKind(tag, 'multiplatform-stage')).toEqual({ kind: 'multiplatform-stage', digest: tag });
        const raw = await c.registry.getManifest(c.repository, tag);
        expect(raw.mediaType).toBe(MediaType.DockerManifestList);
        const list = JSON.parse(Buffer.from(raw.bytes).toString()) as {
          schemaVersion: number;
          mediaType: string;
          manifests: { mediaType: string; size: number; digest: Digest; platform: Record<string, string> }[];
        };
        expect(list.schemaVersion).toBe(2);
        expect(list.mediaType).toBe(MediaType.DockerManifestList);
        expect(list.manifests.map((m) => [m.digest, m.size, m.mediaType])).toEqual(
          [amd.image, arm.image].map((i) => [i.manifest.digest, i.manifest.size, i.manifest.mediaType]),
        );
        expect(list.manifests[0]?.platform).toMatchObject({ os: 'linux', architecture: 'amd64' });
        expect(list.manifests[1]?.platform).toMatchObject({
          os: 'linux',
          architecture: 'arm64',
          variant: 'v8',
        });

        const mpStage: StageID = { digest: tag, creationTs: 0, isMultiplatform: true };
        expect(desc.stageID).toEqual(mpStage);
        expect(desc.info.isIndex).toBe(true);
        expect(desc.info.id).toBe(raw.digest);
        expect(desc.info.name).toBe(`${c.imageAddress}:${tag}`);
        expect(desc.info.tag).toBe(tag);
        expect(desc.info.repoDigest).toBe(`${c.imageAddress}@${raw.digest}`);
        expect(desc.info.index?.map((child) => child.id)).toEqual([
          amd.image.config.digest,
          arm.image.config.digest,
        ]);
        const labelsOf = (i: BuiltImage) => (i.configJson.config as { Labels: unknown }).Labels;
        expect(desc.info.index?.map((child) => child.labels)).toEqual([
          labelsOf(amd.image),
          labelsOf(arm.image),
        ]);
        expect(desc.info.index?.map((child) => child.isIndex)).toEqual([false, false]);
        const childSize = (i: BuiltImage) => i.layers.reduce((sum, l) => sum + l.size, 0);
        expect(desc.info.index?.map((child) => child.size)).toEqual([
          childSize(amd.image),
          childSize(arm.image),
        ]);
        expect(desc.info.size).toBe(childSize(amd.image) + childSize(arm.image));
        expect(await c.storage.getStageDesc(mpStage)).toEqual(desc);
        expect(sortIds(await c.storage.listStageIDs())).toEqual(sortIds([mpStage, amd.stage, arm.stage]));
      });
    });

    describe('copyFromStorage', () => {
      test('copies a stage from another storage once, then answers it here', [], async (c) => {
        const source = await c.another();
        const stage: StageID = { digest: freshDigest(), creationTs: 1700000000321, isMultiplatform: false };
        // werf copies within one project: the stage carries this storage's project label
        const image = buildStageImage({ labels: { werf: c.project, 'werf-version': 'v2.77.1' } });
        await pushBuilt(source.registry, source.repository, image, stageTagOf(stage));
        expect(await c.storage.getStageDesc(stage)).toBeNull();
        expect(await c.storage.listStageIDs({ cache: true })).toEqual([]);
        const desc = await c.storage.copyFromStorage(source.storage, stage);
        // the cached listing is kept current by the copy
        expect(await c.storage.listStageIDs({ cache: true })).toEqual([stage]);
        expect(await c.storage.listStageIDsByDigest(stage.digest, { cache: true })).toEqual([stage]);
        expect(desc).not.toBeNull();
        expect(desc?.stageID).toEqual(stage);
        expect(desc?.info).toEqual(expectedStageInfo(image, c.imageAddress, stageTagOf(stage)));
        expect(await c.storage.listStageIDs()).toEqual([stage]);
        for (const layer of image.layers) {
          expect((await c.registry.headBlob(c.repository, layer.digest))?.size).toBe(layer.size);
        }
        // present: answered without copying again
        expect(await c.storage.copyFromStorage(source.storage, stage)).toEqual(desc);
      });
    });

    describe('fetchImage, storeImage, shouldFetchImage', () => {
      const withLocal = async (fn: (local: { registry: Registry; repository: string }) => Promise<void>) => {
        const root = await mkdtemp(join(tmpdir(), 'stowage-suite-local-'));
        const store = await createImageStore({ root });
        try {
          await fn({ registry: store, repository: 'werf-local/stages' });
        } finally {
          await store.close();
          await rm(root, { recursive: true, force: true });
        }
      };

      test('fetch into the local store, should-fetch after, store back', ['repo'], async (c) => {
        await withLocal(async (local) => {
          const { stage, image, tag } = await c.stage();
          expect(await c.storage.shouldFetchImage(stage, { local })).toBe(true);
          await c.storage.fetchImage(stage, { local });
          expect((await local.registry.headManifest(local.repository, tag))?.digest).toBe(
            image.manifest.digest,
          );
          for (const b of [image.config, ...image.layers]) {
            expect((await local.registry.headBlob(local.repository, b.digest))?.size).toBe(b.size);
          }
          expect(await c.storage.shouldFetchImage(stage, { local })).toBe(false);

          const built: StageID = { digest: freshDigest(), creationTs: 1700000000555, isMultiplatform: false };
          const builtImage = buildStageImage({ labels: { werf: c.project } });
          await pushBuilt(local.registry, local.repository, builtImage, stageTagOf(built));
          expect(await c.storage.getStageDesc(built)).toBeNull();
          // a cached listing from before the store: the store must keep it current
          expect(sortIds(await c.storage.listStageIDs({ cache: true }))).toEqual([stage]);
          await c.storage.storeImage(built, { local });
          expect((await c.storage.getStageDesc(built))?.info.id).toBe(builtImage.config.digest);
          expect((await c.storage.getStageDesc(built, { cache: true }))?.info.id).toBe(
            builtImage.config.digest,
          );
          expect(sortIds(await c.storage.listStageIDs({ cache: true }))).toEqual(sortIds([stage, built]));
        });
      });

      test('fetching a stage that is not there is STAGE_NOT_FOUND', ['repo'], async (c) => {
        await withLocal(async (local) => {
          const stage = { digest: freshDigest(), creationTs: 1700000000999 };
          expect(await codeOf(c.storage.fetchImage(stage, { local }))).toBe('STAGE_NOT_FOUND');
        });
      });

      test('fetching a stage whose layer is gone is BROKEN_IMAGE', ['repo', 'breakBlob'], async (c) => {
        await withLocal(async (local) => {
          const { stage, image, tag } = await c.stage();
          await c.s.breakBlob?.(image.layers[1]!.digest);
          expect(await codeOf(c.storage.fetchImage(stage, { local }))).toBe('BROKEN_IMAGE');
          expect(await local.registry.headManifest(local.repository, tag)).toBeUndefined();
        });
      });

      test('the local storage: stages are already local', ['!repo'], async (c) => {
        await withLocal(async (local) => {
          const { stage } = await c.stage();
          expect(await c.storage.shouldFetchImage(stage, { local })).toBe(false);
          await c.storage.fetchImage(stage, { local });
          await c.storage.storeImage(stage, { local });
          expect(await c.storage.getStageDesc(stage)).not.toBeNull();
        });
      });
    });

    describe('the cache option', () => {
      test('a batch of 20 reads with cache lists the tags once', [], async (c) => {
        let count = counted(c.registry);
        const cached = await c.another({
          wrap: (r) => {
            count = counted(r);
            return count.registry;
          },
        });
        // `cached` is a second storage over a fresh repository; push into its repository
        const stages: StageID[] = [];
        for (let i = 0; i < 9; i++) {
          const stage: StageID = {
            digest: freshDigest(),
            creationTs: 1700000001000 + i,
            isMultiplatform: false,
          };
          await pushBuilt(
            cached.registry,
            cached.repository,
            buildStageImage({ labels: { werf: cached.storage.project }, layers: 1 }),
            stageTagOf(stage),
          );
          stages.push(stage);
        }
        count.reset();
        const reads: Promise<unknown>[] = [cached.storage.listStageIDs({ cache: true })];
        for (const stage of stages)
          reads.push(cached.storage.listStageIDsByDigest(stage.digest, { cache: true }));
        reads.push(cached.storage.listStageIDsByDigest(freshDigest(), { cache: true }));
        for (const stage of stages) reads.push(cached.storage.getStageDesc(stage, { cache: true }));
        expect(reads).toHaveLength(20);
        const results = await Promise.all(reads);
        expect(count.count('listTags')).toBe(1);
        expect(sortIds(results[0] as StageID[])).toEqual(stages);
        for (let i = 0; i < 9; i++) {
          expect(results[1 + i]).toEqual([stages[i]]);
          expect((results[11 + i] as StageDesc | null)?.stageID).toEqual(stages[i]);
        }
        // and in sequence too
        for (const stage of stages) await cached.storage.listStageIDsByDigest(stage.digest, { cache: true });
        expect(count.count('listTags')).toBe(1);
        // without the cache every listing read lists again
        await cached.storage.listStageIDs();
        await cached.storage.listStageIDs();
        expect(count.count('listTags')).toBe(3);
        // dropCache forgets the listing
        cached.storage.dropCache();
        await cached.storage.listStageIDs({ cache: true });
        expect(count.count('listTags')).toBe(4);
      });

      test('writes through the storage keep the cached listing current', ['records'], async (c) => {
        let count = counted(c.registry);
        const cached = await c.another({
          wrap: (r) => {
            count = counted(r);
            return count.registry;
          },
        });
        expect(await cached.storage.listManagedImages({ cache: true })).toEqual([]);
        const listed = count.count('listTags');
        await cached.storage.addManagedImage('backend');
        expect(await cached.storage.managedImageExists('backend', { cache: true })).toBe(true);
        expect(await cached.storage.listManagedImages({ cache: true })).toEqual(['backend']);
        await cached.storage.removeManagedImage('backend');
        expect(await cached.storage.listManagedImages({ cache: true })).toEqual([]);
        expect(count.count('listTags')).toBe(listed);
      });
    });
  });
}
