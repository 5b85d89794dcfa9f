// stowage store images, rm, gc, fsck: the local image store at --root (default
// ./data, the one stowage-server serves), through the image store's own API.
import type { ImageStore, ImageStoreGcProgress } from '@stowage/image-store';
import { parseGoDuration } from '@stowage/oci';
import { defineCommand, GENERAL_OPTIONS_HELP, type OptionTable, quoted, usageError } from './command.js';
import { terminalStatusLine } from './progress.js';
import { openLocalStore, Remotes } from './remote.js';

const ROOT_OPTION = { root: { type: 'string' } } as const satisfies OptionTable;
const ROOT_HELP = '  --root <dir>           the image store (default ./data, as stowage-server)';

/** Opens the store at --root (read-only unless the command changes it), runs `work`, closes it. */
async function withStore<T>(
  values: { readonly root?: string | undefined },
  writes: boolean,
  work: (store: ImageStore) => Promise<T>,
): Promise<T> {
  const store = await openLocalStore(values.root, writes);
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

const IMAGES_USAGE = 'usage: stowage store images [options]';

export const storeImagesCommand = defineCommand({
  name: 'store images',
  synopsis: 'store images',
  summary: 'list the repositories and tags of the local store',
  usage: IMAGES_USAGE,
  help: `${IMAGES_USAGE}

Lists every tag of every repository of the store: "<repository>:<tag> <digest>" per line, in
byte order. With --json: {"images":[{"repository","tag","digest","mediaType","size"}]}, stable.

options:
  --json                 the images as one JSON object
${ROOT_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage store images --root /srv/stowage
  stowage store images --json`,
  options: { json: { type: 'boolean' }, ...ROOT_OPTION },
  async run({ operands, values }) {
    if (operands.length > 0)
      throw usageError('store images', `store images takes no arguments, not ${quoted(operands)}`);
    const images = await withStore(values, false, async (store) => {
      const found: { repository: string; tag: string; digest: string; mediaType: string; size: number }[] =
        [];
      for (const repository of (await store.listRepositories()).items) {
        for (const tag of (await store.listTags(repository)).items) {
          const info = await store.headManifest(repository, tag);
          if (info)
            found.push({ repository, tag, digest: info.digest, mediaType: info.mediaType, size: info.size });
        }
      }
      return found;
    });
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ images })}\n`
        : images.map((i) => `${i.repository}:${i.tag} ${i.digest}\n`).join(''),
    );
    return 0;
  },
});

const RM_USAGE = 'usage: stowage store rm [options] <repository:tag|repository@digest>...';

export const storeRmCommand = defineCommand({
  name: 'store rm',
  synopsis: 'store rm <image>...',
  summary: 'remove tags or manifests from the local store',
  usage: RM_USAGE,
  help: `${RM_USAGE}

Removes each image named from the store: a tag (the manifest stays while another tag or an
index holds it), or by digest the manifest and every tag on it. The bytes go at the next
stowage store gc.

options:
${ROOT_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage store rm app:old
  stowage store rm app@sha256:... --root /srv/stowage`,
  options: { ...ROOT_OPTION },
  async run({ operands, values }) {
    if (operands.length === 0)
      throw usageError('store rm', 'store rm needs an image (repository:tag or repository@digest)');
    const remotes = new Remotes('store rm', values);
    const references = operands.map((text) => {
      const reference = remotes.parse(`store:${text.replace(/^store:/, '')}`, 'image');
      if (reference.tag === undefined && reference.digest === undefined) {
        throw usageError(
          'store rm',
          `name a tag or a digest of ${JSON.stringify(text)}: store rm removes no repository whole`,
        );
      }
      return reference;
    });
    await withStore(values, true, async (store) => {
      for (const reference of references) {
        if (reference.digest !== undefined)
          await store.deleteManifest(reference.repository, reference.digest);
        else await store.deleteTag(reference.repository, reference.tag as string);
        process.stdout.write(
          `removed ${reference.repository}${reference.digest ? `@${reference.digest}` : `:${reference.tag}`}\n`,
        );
      }
    });
    return 0;
  },
});

const GC_USAGE = 'usage: stowage store gc [options]';

export const storeGcCommand = defineCommand({
  name: 'store gc',
  synopsis: 'store gc [--dry-run]',
  summary: 'remove what nothing in the local store references',
  usage: GC_USAGE,
  help: `${GC_USAGE}

Removes the blobs no manifest references, stale upload sessions and, with --delete-untagged,
manifests no tag or index holds; anything younger than the grace period is kept (so a push in
flight keeps its blobs). Safe while stowage-server serves the same root. Prints what it removed
(or, with --dry-run, would remove); with --json the report.

options:
  --dry-run              change nothing, only report
  --delete-untagged      also remove manifests that no tag and no index holds
  --grace <duration>     keep what is younger than this (Go form: 10m, 1h; default the store's)
  --json                 the report as one JSON object
${ROOT_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage store gc --dry-run
  stowage store gc --delete-untagged --grace 1h --root /srv/stowage`,
  options: {
    'dry-run': { type: 'boolean' },
    'delete-untagged': { type: 'boolean' },
    grace: { type: 'string' },
    json: { type: 'boolean' },
    ...ROOT_OPTION,
  },
  async run({ operands, values }) {
    if (operands.length > 0)
      throw usageError('store gc', `store gc takes no arguments, not ${quoted(operands)}`);
    let gracePeriodMs: number | undefined;
    if (values.grace !== undefined) {
      gracePeriodMs = parseGoDuration(values.grace);
      if (gracePeriodMs === undefined || gracePeriodMs < 0) {
        throw usageError(
          'store gc',
          `--grace must be a duration such as 10m or 1h, not ${JSON.stringify(values.grace)}`,
        );
      }
    }
    const line = terminalStatusLine();
    const report = await withStore(values, !values['dry-run'], (store) =>
      store
        .garbageCollect({
          dryRun: values['dry-run'] ?? false,
          ...(values['delete-untagged'] ? { deleteUntagged: true } : {}),
          ...(gracePeriodMs !== undefined ? { gracePeriodMs } : {}),
          ...(line
            ? {
                onProgress: (event: ImageStoreGcProgress) =>
                  line.draw(
                    event.phase === 'mark'
                      ? `gc: marking, ${event.repositories}/${event.total} repositories`
                      : `gc: sweeping, ${event.blobs} blobs looked at, ${event.removed} unreferenced`,
                  ),
              }
            : {}),
        })
        .finally(() => line?.end()),
    );
    const verb = report.dryRun ? 'would remove' : 'removed';
    process.stdout.write(
      values.json
        ? `${JSON.stringify(report)}\n`
        : `${verb} ${report.blobsRemoved.length} blobs (${(report.bytesFreed / 1048576).toFixed(1)} MiB), ${report.manifestsRemoved.length} manifests, ${report.uploadsRemoved} upload sessions\n`,
    );
    return 0;
  },
});

const FSCK_USAGE = 'usage: stowage store fsck [options]';

export const storeFsckCommand = defineCommand({
  name: 'store fsck',
  synopsis: 'store fsck',
  summary: 'check every blob and manifest of the local store',
  usage: FSCK_USAGE,
  help: `${FSCK_USAGE}

Reads every blob and checks it against its digest, and every manifest and tag against what they
reference; changes nothing. Prints one line per problem and a summary; exit code 1 when it found
any. With --json the report.

options:
  --json                 the report as one JSON object
${ROOT_HELP}
${GENERAL_OPTIONS_HELP}

example:
  stowage store fsck --root /srv/stowage`,
  options: { json: { type: 'boolean' }, ...ROOT_OPTION },
  async run({ operands, values }) {
    if (operands.length > 0)
      throw usageError('store fsck', `store fsck takes no arguments, not ${quoted(operands)}`);
    const report = await withStore(values, false, (store) => store.fsck());
    if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else {
      const lines = report.problems.map(
        (p) =>
          `${p.kind}: ${p.repository ?? ''}${p.digest ? `@${p.digest}` : ''} ${p.path}${p.detail ? ` (${p.detail})` : ''}`,
      );
      lines.push(
        `checked ${report.blobsChecked} blobs and ${report.manifestsChecked} manifests: ${report.problems.length} problems`,
      );
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return report.problems.length > 0 ? 1 : 0;
  },
});
