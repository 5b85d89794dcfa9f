// stowage copy <src> <dst>: one copyImage between registries and the local store,
// digests preserved; a progress line on a terminal, the result as JSON with --json.
import type { CopyProgressEvent } from '@stowage/copy';
import { parsePlatform } from '@stowage/oci';
import { defineCommand, GENERAL_OPTIONS_HELP, quoted, usageError } from './command.js';
import { type StatusLine, terminalStatusLine } from './progress.js';
import { REMOTE_OPTIONS, REMOTE_OPTIONS_HELP, Remotes, type RemoteValues } from './remote.js';

const USAGE = 'usage: stowage copy [options] <source> <destination>';

const HELP = `${USAGE}

Copies an image (a whole index with every platform, unless --platform filters it) from
<source> to <destination>, blobs the destination has skipped, every digest kept, so the copy
of an index is the same index. Each side is one of:
  [docker://]registry/repository[:tag|@digest]   a registry (docker:// is the default)
  store:repository[:tag|@digest]                 the local image store at --root
  oci:<dir>[:<tag>], oci:<dir>@<digest>          an OCI image layout (skopeo's oci: transport;
                                                 without a tag, its one image)
A destination without a tag or digest takes the source's tag (else latest).

options:
  --platform <os/arch[/variant]>  only this platform of an index (repeatable); the index
                                  keeps its digest where the destination holds a sparse
                                  index, else it is rewritten (a new digest, reported)
  --referrers                     also copy signatures, SBOMs and other referrers
  --concurrency <n>               blobs and manifests at once (default 4)
  --json                          the result (digests, blobs copied and skipped) as JSON
  --src-plain-http, --dest-plain-http
                                  --plain-http for one side only
  --src-insecure, --dest-insecure --insecure for one side only
  --src-authfile <file>, --dest-authfile <file>
                                  --authfile for one side only
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage copy docker://registry.example/app:v1 127.0.0.1:5000/mirror/app:v1
  stowage copy registry.example/app:v1 store:app:v1 --root /srv/stowage --platform linux/amd64
  stowage copy store:app:v1 127.0.0.1:5000/app --json
  stowage copy oci:./app-layout:v1 127.0.0.1:5000/app:v1

On a terminal one updating line on stderr shows the blobs and bytes done.`;

/** The copy's status line: blobs and bytes done. */
function copyProgress(line: StatusLine) {
  let bytes = 0;
  let blobs = 0;
  let skipped = 0;
  return {
    onProgress(event: CopyProgressEvent) {
      if (event.type === 'blob-done') {
        blobs++;
        bytes += event.size;
      }
      if (event.type === 'blob-skipped' || event.type === 'blob-mounted') skipped++;
      line.draw(
        `copying: ${blobs} blobs (${skipped} already there), ${(bytes / 1048576).toFixed(1)} MiB`,
        event.type === 'manifest-done',
      );
    },
    end: () => line.end(),
  };
}

export const copyCommand = defineCommand({
  name: 'copy',
  synopsis: 'copy <source> <destination>',
  summary: 'copy an image between registries and the local store',
  usage: USAGE,
  help: HELP,
  options: {
    platform: { type: 'string', multiple: true },
    referrers: { type: 'boolean' },
    concurrency: { type: 'string' },
    json: { type: 'boolean' },
    'src-plain-http': { type: 'boolean' },
    'dest-plain-http': { type: 'boolean' },
    'src-insecure': { type: 'boolean' },
    'dest-insecure': { type: 'boolean' },
    'src-authfile': { type: 'string' },
    'dest-authfile': { type: 'string' },
    ...REMOTE_OPTIONS,
  },
  async run({ operands, values }) {
    if (operands.length !== 2) {
      throw usageError(
        'copy',
        operands.length < 2
          ? 'copy needs a source and a destination'
          : `copy takes a source and a destination, not ${operands.length}: ${quoted(operands)}`,
      );
    }
    const platforms = (values.platform ?? []).map((text) => {
      try {
        return parsePlatform(text);
      } catch (error) {
        throw usageError('copy', `--platform ${(error as Error).message}`);
      }
    });
    let concurrency: number | undefined;
    if (values.concurrency !== undefined) {
      concurrency = Number(values.concurrency);
      if (!/^[0-9]+$/.test(values.concurrency) || concurrency < 1 || concurrency > 64) {
        throw usageError(
          'copy',
          `--concurrency must be a whole number from 1 to 64, not ${JSON.stringify(values.concurrency)}`,
        );
      }
    }
    await using remotes = new Remotes('copy', values, { writes: true });
    {
      const side = (prefix: 'src' | 'dest'): RemoteValues => ({
        'plain-http': values[`${prefix}-plain-http`],
        insecure: values[`${prefix}-insecure`],
        authfile: values[`${prefix}-authfile`],
      });
      const source = await remotes.open(operands[0] as string, 'source', side('src'));
      const destination = await remotes.open(operands[1] as string, 'destination', side('dest'));
      const tag =
        destination.reference.tag ??
        (destination.reference.digest === undefined ? (source.reference.tag ?? 'latest') : undefined);
      const line = terminalStatusLine();
      const progress = line ? copyProgress(line) : undefined;
      try {
        const { copyImage } = await import('@stowage/copy');
        const result = await copyImage(
          { registry: source.registry, repository: source.reference.repository, reference: source.target },
          {
            registry: destination.registry,
            repository: destination.reference.repository,
            ...(tag ? { tag } : {}),
          },
          {
            ...(platforms.length ? { platforms, rewriteIndex: true } : {}),
            ...(values.referrers ? { referrers: true } : {}),
            ...(concurrency ? { concurrency } : {}),
            ...(progress ? { onProgress: progress.onProgress } : {}),
          },
        );
        progress?.end();
        process.stdout.write(
          values.json
            ? `${JSON.stringify(result)}\n`
            : `${operands[1]}: ${result.digest} (${result.blobsCopied} blobs copied, ${result.blobsSkipped + result.blobsMounted} already there, ${(result.bytesCopied / 1048576).toFixed(1)} MiB)\n`,
        );
      } finally {
        progress?.end();
      }
    }
    return 0;
  },
});
