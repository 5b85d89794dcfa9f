// stowage manifest get, digest, config: a reference to its manifest (a platform's
// child of an index with --platform), its digest, or its image config.

import { readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import {
  type Digest,
  defaultPlatform,
  detectManifestMediaType,
  formatPlatform,
  isValidTag,
  type ManifestContent,
  type ParsedManifest,
  parseManifest,
  parsePlatform,
  RegistryError,
  selectManifest,
} from '@stowage/oci';
import {
  defineCommand,
  GENERAL_OPTIONS_HELP,
  type OptionTable,
  oneOperand,
  quoted,
  usageError,
} from './command.js';
import { REMOTE_OPTIONS, REMOTE_OPTIONS_HELP, type Remote, Remotes, type RemoteValues } from './remote.js';

const PLATFORM_OPTION = { platform: { type: 'string' } } as const satisfies OptionTable;

/** Streams bytes to stdout, minding its pace, and leaves it open. */
export async function toStdout(stream: NodeJS.ReadableStream): Promise<void> {
  await pipeline(stream, process.stdout, { end: false });
}

/** The platform asked for, checked; a malformed one is a usage error. */
export function platformOf(command: string, text: string | undefined) {
  if (text === undefined) return undefined;
  try {
    return parsePlatform(text);
  } catch (error) {
    throw usageError(command, `--platform ${(error as Error).message}`);
  }
}

/**
 * The manifest a reference names; with a platform, an index's child for it
 * (an image manifest is returned as it is, if its config matches or not).
 */
export async function resolveManifest(
  remote: Remote,
  platform: ReturnType<typeof parsePlatform> | undefined,
): Promise<{ content: ManifestContent; parsed: ParsedManifest }> {
  const { registry, reference, target } = remote;
  const content = await registry.getManifest(reference.repository, target);
  const parsed = parseManifest(content.bytes, { mediaType: content.mediaType });
  if (platform === undefined || parsed.kind !== 'index') return { content, parsed };
  const child = selectManifest(parsed.manifest, platform);
  if (!child) {
    const offered = parsed.manifest.manifests.flatMap((d) =>
      d.platform ? [formatPlatform(d.platform)] : [],
    );
    throw new RegistryError(
      'MANIFEST_UNKNOWN',
      `${Remotes.label(reference)}:${target} has no manifest for ${formatPlatform(platform)} (it has ${offered.join(', ') || 'none'})`,
    );
  }
  const childContent = await registry.getManifest(reference.repository, child.digest);
  return {
    content: childContent,
    parsed: parseManifest(childContent.bytes, { mediaType: childContent.mediaType, digest: child.digest }),
  };
}

const MANIFEST_GET_USAGE = 'usage: stowage manifest get [options] <image>';

export const manifestGetCommand = defineCommand({
  name: 'manifest get',
  synopsis: 'manifest get <image>',
  summary: "print an image's manifest, byte for byte",
  usage: MANIFEST_GET_USAGE,
  help: `${MANIFEST_GET_USAGE}

Prints the manifest (or index) <image> names, its bytes exactly as the registry holds them, so
their sha256 is the digest. <image> is registry/repository[:tag|@digest] (docker:// allowed;
without a tag, latest).

options:
  --platform <os/arch[/variant]>  of an index, the child for this platform instead
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage manifest get 127.0.0.1:5000/app:v1
  stowage manifest get docker://registry.example/app@sha256:... --platform linux/arm64`,
  options: { ...PLATFORM_OPTION, ...REMOTE_OPTIONS },
  async run({ operands, values }) {
    const image = oneOperand('manifest get', operands, 'an image reference');
    const platform = platformOf('manifest get', values.platform);
    await using remotes = new Remotes('manifest get', values);
    const { content } = await resolveManifest(await remotes.open(image), platform);
    process.stdout.write(content.bytes);
    return 0;
  },
});

const DIGEST_USAGE = 'usage: stowage digest [options] <image>';

export const digestCommand = defineCommand({
  name: 'digest',
  synopsis: 'digest <image>',
  summary: "print the digest of an image's manifest",
  usage: DIGEST_USAGE,
  help: `${DIGEST_USAGE}

Prints the digest of the manifest <image> names (one HEAD request; a GET where the registry
sends no digest header). With --json: {"digest","mediaType","size"}.

options:
  --platform <os/arch[/variant]>  of an index, the child for this platform instead
  --json                          the digest, media type and size as one JSON object
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage digest 127.0.0.1:5000/app:v1
  stowage digest registry.example/app:v1 --platform linux/amd64 --json`,
  options: { ...PLATFORM_OPTION, json: { type: 'boolean' }, ...REMOTE_OPTIONS },
  async run({ operands, values }) {
    const image = oneOperand('digest', operands, 'an image reference');
    const platform = platformOf('digest', values.platform);
    await using remotes = new Remotes('digest', values);
    const remote = await remotes.open(image);
    let info: { digest: string; mediaType: string; size: number } | undefined;
    if (platform === undefined) {
      info = await remote.registry.headManifest(remote.reference.repository, remote.target);
      if (!info) {
        throw new RegistryError(
          'MANIFEST_UNKNOWN',
          `${Remotes.label(remote.reference)}:${remote.target} is not there`,
        );
      }
    } else {
      const { content } = await resolveManifest(remote, platform);
      info = { digest: content.digest, mediaType: content.mediaType, size: content.size };
    }
    const { digest, mediaType, size } = info;
    process.stdout.write(values.json ? `${JSON.stringify({ digest, mediaType, size })}\n` : `${digest}\n`);
    return 0;
  },
});

const CONFIG_USAGE = 'usage: stowage config [options] <image>';

export const configCommand = defineCommand({
  name: 'config',
  synopsis: 'config <image>',
  summary: "print an image's config blob",
  usage: CONFIG_USAGE,
  help: `${CONFIG_USAGE}

Prints the config blob of the image <image> names, byte for byte. For an index, the child of
--platform (default: this machine's, ${formatPlatform(defaultPlatform())}).

options:
  --platform <os/arch[/variant]>  which child of an index
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage config 127.0.0.1:5000/app:v1
  stowage config registry.example/app:v1 --platform linux/arm64`,
  options: { ...PLATFORM_OPTION, ...REMOTE_OPTIONS },
  async run({ operands, values }) {
    const image = oneOperand('config', operands, 'an image reference');
    const platform = platformOf('config', values.platform) ?? defaultPlatform();
    await using remotes = new Remotes('config', values);
    const remote = await remotes.open(image);
    const { parsed } = await resolveManifest(remote, platform);
    if (parsed.kind !== 'image')
      throw new RegistryError('MANIFEST_INVALID', 'the index names another index for that platform');
    const blob = await remote.registry.getBlob(remote.reference.repository, parsed.manifest.config.digest);
    await toStdout(blob.stream);
    return 0;
  },
});

/** The digest a reference names: its own, or the one its tag points at now (one HEAD). */
export async function digestOf(remote: Remote): Promise<Digest> {
  if (remote.reference.digest !== undefined) return remote.reference.digest;
  const info = await remote.registry.headManifest(remote.reference.repository, remote.target);
  if (!info) {
    throw new RegistryError(
      'MANIFEST_UNKNOWN',
      `${Remotes.label(remote.reference)}:${remote.target} is not there`,
    );
  }
  return info.digest;
}

const MANIFEST_PUT_USAGE = 'usage: stowage manifest put [options] <image> [<file>|-]';

export const manifestPutCommand = defineCommand({
  name: 'manifest put',
  synopsis: 'manifest put <image> [<file>]',
  summary: 'push a manifest from a file or stdin',
  usage: MANIFEST_PUT_USAGE,
  help: `${MANIFEST_PUT_USAGE}

Pushes the manifest in <file> (or stdin, without one or with -) to <image>, byte for byte, under
its tag (or by digest: the bytes must have that digest). The media type is the one the manifest
declares (its mediaType field, else what its shape implies), or --media-type. Every blob and
child it references must be in the repository already. Prints the digest.

options:
  --media-type <type>    push it with this media type
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage manifest get registry.example/app:v1 > m.json && stowage manifest put 127.0.0.1:5000/app:v1 m.json
  stowage manifest get registry.example/app:v1 | stowage manifest put 127.0.0.1:5000/app:copy`,
  options: { 'media-type': { type: 'string' }, ...REMOTE_OPTIONS },
  async run({ operands, values }) {
    if (operands.length === 0 || operands.length > 2) {
      throw usageError(
        'manifest put',
        operands.length === 0
          ? 'manifest put needs an image reference (and a file, else stdin)'
          : `manifest put takes an image reference and a file, not ${operands.length}: ${quoted(operands)}`,
      );
    }
    const [image, file = '-'] = operands as [string, string?];
    const bytes = file === '-' ? await readStdin() : await readFile(file);
    let mediaType = values['media-type'];
    if (mediaType === undefined) {
      try {
        mediaType = detectManifestMediaType(JSON.parse(Buffer.from(bytes).toString('utf8')));
      } catch {
        // not JSON: parseManifest below names what is wrong
      }
    }
    const parsed = parseManifest(bytes, mediaType === undefined ? {} : { mediaType });
    await using remotes = new Remotes('manifest put', values, { writes: true });
    const { registry, reference, target } = await remotes.open(image);
    const result = await registry.putManifest(reference.repository, target, {
      bytes,
      mediaType: parsed.mediaType,
    });
    process.stdout.write(`${result.digest}\n`);
    return 0;
  },
});

async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Deletes the manifest an image names (a tag resolved to its digest first) and prints the digest. */
async function deleteImage(
  command: string,
  operands: readonly string[],
  values: RemoteValues,
): Promise<number> {
  const image = oneOperand(command, operands, 'an image reference');
  await using remotes = new Remotes(command, values, { writes: true });
  const remote = await remotes.open(image);
  const digest = await digestOf(remote);
  await remote.registry.deleteManifest(remote.reference.repository, digest);
  process.stdout.write(`${digest}\n`);
  return 0;
}

const deleteHelp = (name: string) => `usage: stowage ${name} [options] <image>

Deletes the manifest <image> names (a tag is resolved to its digest first, as crane delete does):
every tag that points at it goes with it. Prints the digest deleted.

options:
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage ${name} 127.0.0.1:5000/app@sha256:...
  stowage ${name} 127.0.0.1:5000/app:old`;

export const manifestDeleteCommand = defineCommand({
  name: 'manifest delete',
  synopsis: 'manifest delete <image>',
  summary: 'delete a manifest (every tag pointing at it goes too)',
  usage: 'usage: stowage manifest delete [options] <image>',
  help: deleteHelp('manifest delete'),
  options: { ...REMOTE_OPTIONS },
  run: ({ operands, values }) => deleteImage('manifest delete', operands, values),
});

export const deleteCommand = defineCommand({
  name: 'delete',
  synopsis: 'delete <image>',
  summary: 'delete an image: its manifest and the tags on it',
  usage: 'usage: stowage delete [options] <image>',
  help: deleteHelp('delete'),
  options: { ...REMOTE_OPTIONS },
  run: ({ operands, values }) => deleteImage('delete', operands, values),
});

const TAG_USAGE = 'usage: stowage tag [options] <image> <tag>...';

export const tagCommand = defineCommand({
  name: 'tag',
  synopsis: 'tag <image> <tag>...',
  summary: 'put more tags on an image, in its repository',
  usage: TAG_USAGE,
  help: `${TAG_USAGE}

Points each <tag> of <image>'s repository at the manifest <image> names (its bytes pushed again
under the tag, nothing else moved), as crane tag does. Prints the digest.

options:
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage tag 127.0.0.1:5000/app:v1.2.3 v1.2 v1 latest
  stowage tag registry.example/app@sha256:... stable`,
  options: { ...REMOTE_OPTIONS },
  async run({ operands, values }) {
    if (operands.length < 2) throw usageError('tag', 'tag needs an image reference and at least one tag');
    const [image, ...tags] = operands as [string, ...string[]];
    for (const tag of tags) {
      if (!isValidTag(tag))
        throw usageError(
          'tag',
          `invalid tag ${JSON.stringify(tag)}: tags match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`,
        );
    }
    await using remotes = new Remotes('tag', values, { writes: true });
    const { registry, reference, target } = await remotes.open(image);
    const content = await registry.getManifest(reference.repository, target);
    for (const tag of tags) {
      await registry.putManifest(reference.repository, tag, {
        bytes: content.bytes,
        mediaType: content.mediaType,
      });
    }
    process.stdout.write(`${content.digest}\n`);
    return 0;
  },
});
