// stowage manifest get, digest, config: a reference to its manifest (a platform's
// child of an index with --platform), its digest, or its image config.

import { pipeline } from 'node:stream/promises';
import {
  defaultPlatform,
  formatPlatform,
  type ManifestContent,
  type ParsedManifest,
  parseManifest,
  parsePlatform,
  RegistryError,
  selectManifest,
} from '@stowage/oci';
import { defineCommand, GENERAL_OPTIONS_HELP, type OptionTable, quoted, usageError } from './command.js';
import { REMOTE_OPTIONS, REMOTE_OPTIONS_HELP, type Remote, Remotes } from './remote.js';

const PLATFORM_OPTION = { platform: { type: 'string' } } as const satisfies OptionTable;

/** The one operand a command takes, or a usage error naming what is missing or extra. */
export function oneOperand(command: string, operands: readonly string[], what: string): string {
  if (operands.length === 0) throw usageError(command, `${command} needs ${what}`);
  if (operands.length > 1) {
    throw usageError(
      command,
      `${command} takes one ${what.replace(/^an? /, '')}, not ${operands.length}: ${quoted(operands)}`,
    );
  }
  return operands[0] as string;
}

/** Streams bytes to stdout, minding its pace, and leaves it open. */
export async function toStdout(stream: NodeJS.ReadableStream): Promise<void> {
  await pipeline(stream, process.stdout, { end: false });
}

/** The platform asked for, checked; a malformed one is a usage error. */
function platformOf(command: string, text: string | undefined) {
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
async function resolveManifest(
  remote: Remote,
  platform: ReturnType<typeof parsePlatform> | undefined,
): Promise<{ content: ManifestContent; parsed: ParsedManifest }> {
  const { client, reference, target } = remote;
  const content = await client.getManifest(reference.repository, target);
  const parsed = parseManifest(content.bytes, { mediaType: content.mediaType });
  if (platform === undefined || parsed.kind !== 'index') return { content, parsed };
  const child = selectManifest(parsed.manifest, platform);
  if (!child) {
    const offered = parsed.manifest.manifests.flatMap((d) =>
      d.platform ? [formatPlatform(d.platform)] : [],
    );
    throw new RegistryError(
      'MANIFEST_UNKNOWN',
      `${reference.repository}:${target} has no manifest for ${formatPlatform(platform)} (it has ${offered.join(', ') || 'none'})`,
    );
  }
  const childContent = await client.getManifest(reference.repository, child.digest);
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
    const { content } = await resolveManifest(remotes.open(image), platform);
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
    const remote = remotes.open(image);
    let info: { digest: string; mediaType: string; size: number } | undefined;
    if (platform === undefined) {
      info = await remote.client.headManifest(remote.reference.repository, remote.target);
      if (!info) {
        throw new RegistryError(
          'MANIFEST_UNKNOWN',
          `${remote.reference.repository}:${remote.target} is not in the registry`,
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
    const remote = remotes.open(image);
    const { parsed } = await resolveManifest(remote, platform);
    if (parsed.kind !== 'image')
      throw new RegistryError('MANIFEST_INVALID', 'the index names another index for that platform');
    const blob = await remote.client.getBlob(remote.reference.repository, parsed.manifest.config.digest);
    await toStdout(blob.stream);
    return 0;
  },
});
