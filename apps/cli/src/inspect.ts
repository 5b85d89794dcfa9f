// stowage inspect (what skopeo inspect shows) and stowage referrers.
import { defaultPlatform, formatPlatform, RegistryError, readBlobBytes } from '@stowage/oci';
import { defineCommand, GENERAL_OPTIONS_HELP, oneOperand } from './command.js';
import { digestOf, platformOf, resolveManifest } from './manifests.js';
import { REMOTE_OPTIONS, REMOTE_OPTIONS_HELP, Remotes, type RemoteValues } from './remote.js';

const INSPECT_USAGE = 'usage: stowage inspect [options] <image>';

interface ImageConfig {
  readonly created?: string;
  readonly architecture?: string;
  readonly os?: string;
  readonly variant?: string;
  readonly docker_version?: string;
  readonly config?: { readonly Labels?: Record<string, string> | null; readonly Env?: string[] | null };
}

export const inspectCommand = defineCommand({
  name: 'inspect',
  synopsis: 'inspect <image>',
  summary: 'show an image as skopeo inspect does',
  usage: INSPECT_USAGE,
  help: `${INSPECT_USAGE}

Prints what skopeo inspect prints, as one JSON object with its field names: Name, Digest (of
the manifest <image> names, an index's own), RepoTags (every tag of the repository), Created,
DockerVersion, Labels, Architecture, Os, Variant, Layers, LayersData and Env. Of an index, the
image shown is --platform's (default this machine's, ${formatPlatform(defaultPlatform())}).

options:
  --platform <os/arch[/variant]>  which child of an index to show
  --json                          accepted as by every read command: the output is JSON already
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage inspect 127.0.0.1:5000/app:v1
  stowage inspect docker://registry.example/app:v1 --platform linux/arm64`,
  options: { platform: { type: 'string' }, json: { type: 'boolean' }, ...REMOTE_OPTIONS },
  run: ({ operands, values }) =>
    inspectImage('inspect', oneOperand('inspect', operands, 'an image reference'), values),
});

export const storeInspectCommand = defineCommand({
  name: 'store inspect',
  synopsis: 'store inspect <image>',
  summary: 'show an image of the local store as skopeo inspect does',
  usage: 'usage: stowage store inspect [options] <repository[:tag|@digest]>',
  help: `usage: stowage store inspect [options] <repository[:tag|@digest]>

stowage inspect store:<image>: what skopeo inspect shows, of an image of the local store.

options:
  --platform <os/arch[/variant]>  which child of an index to show
  --json                          accepted as by every read command: the output is JSON already
  --root <dir>                    the image store (default ./data, as stowage-server)
${GENERAL_OPTIONS_HELP}

example:
  stowage store inspect app:v1 --root /srv/stowage`,
  options: { platform: { type: 'string' }, json: { type: 'boolean' }, root: { type: 'string' } },
  run: ({ operands, values }) => {
    const image = oneOperand('store inspect', operands, 'an image (repository:tag)');
    return inspectImage('store inspect', `store:${image.replace(/^store:/, '')}`, values);
  },
});

async function inspectImage(
  command: string,
  image: string,
  values: RemoteValues & { readonly platform?: string | undefined },
): Promise<number> {
  const platform = platformOf(command, values.platform) ?? defaultPlatform();
  await using remotes = new Remotes(command, values);
  const remote = await remotes.open(image);
  const { registry, reference } = remote;
  const top = await digestOf(remote);
  const { parsed } = await resolveManifest(remote, platform);
  if (parsed.kind !== 'image')
    throw new RegistryError('MANIFEST_INVALID', 'the index names another index for that platform');
  const configBytes = await readBlobBytes(registry, reference.repository, parsed.manifest.config.digest);
  const config = JSON.parse(Buffer.from(configBytes).toString('utf8')) as ImageConfig;
  const { items: tags } = await registry.listTags(reference.repository);
  const layers = parsed.manifest.layers;
  const shown = {
    Name: Remotes.label(reference),
    Digest: top,
    RepoTags: tags,
    Created: config.created,
    DockerVersion: config.docker_version ?? '',
    Labels: config.config?.Labels ?? null,
    Architecture: config.architecture,
    Os: config.os,
    ...(config.variant ? { Variant: config.variant } : {}),
    Layers: layers.map((l) => l.digest),
    LayersData: layers.map((l) => ({
      MIMEType: l.mediaType,
      Digest: l.digest,
      Size: l.size,
      Annotations: l.annotations ?? null,
    })),
    Env: config.config?.Env ?? null,
  };
  process.stdout.write(`${JSON.stringify(shown, null, 4)}\n`);
  return 0;
}

const REFERRERS_USAGE = 'usage: stowage referrers [options] <image>';

export const referrersCommand = defineCommand({
  name: 'referrers',
  synopsis: 'referrers <image>',
  summary: 'list what refers to an image (signatures, SBOMs)',
  usage: REFERRERS_USAGE,
  help: `${REFERRERS_USAGE}

Lists the manifests whose subject is the manifest <image> names: the referrers API, or the
<alg>-<hex> tag where the registry has none (docker-registry). One line each: digest,
artifact type, media type. With --json: {"subject","manifests":[descriptors]}, stable.

options:
  --artifact-type <type>  only referrers of this artifact type
  --json                  the subject and the descriptors as one JSON object
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage referrers 127.0.0.1:5000/app:v1
  stowage referrers registry.example/app@sha256:... --artifact-type application/spdx+json --json`,
  options: { 'artifact-type': { type: 'string' }, json: { type: 'boolean' }, ...REMOTE_OPTIONS },
  async run({ operands, values }) {
    const image = oneOperand('referrers', operands, 'an image reference');
    await using remotes = new Remotes('referrers', values);
    const remote = await remotes.open(image);
    const subject = await digestOf(remote);
    const artifactType = values['artifact-type'];
    const { manifests } = await remote.registry.listReferrers(remote.reference.repository, subject, {
      ...(artifactType !== undefined ? { artifactType } : {}),
    });
    // a registry that cannot filter answers everything: the filter is applied here too
    const shown =
      artifactType === undefined ? manifests : manifests.filter((d) => d.artifactType === artifactType);
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ subject, manifests: shown })}\n`
        : shown.map((d) => `${d.digest} ${d.artifactType ?? '-'} ${d.mediaType}\n`).join(''),
    );
    return 0;
  },
});
