// stowage mutate <image>: labels and annotations changed, a new manifest pushed
// into the same repository (crane mutate's model), through mutateImage.
import { isValidTag } from '@stowage/oci';
import { defineCommand, GENERAL_OPTIONS_HELP, oneOperand, usageError } from './command.js';
import { REMOTE_OPTIONS, REMOTE_OPTIONS_HELP, Remotes } from './remote.js';

const USAGE = 'usage: stowage mutate [options] <image>';

const HELP = `${USAGE}

Changes the labels (in the image config) and the annotations (on the manifest) of <image>
and pushes the result into the same repository as a new manifest; the layers are not touched
and the original stays as it was. For an index, the labels change in every image it holds
(attestations are kept, pointing at the new images) and the annotations on the index itself.
Without --tag the result is pushed by digest only, as crane mutate does. Prints the new
reference (repository@digest); with --json: {"repository","digest","mediaType","size",
"sourceDigest","tag"?,"children":[{"digest","mediaType","size","sourceDigest"}]}, stable.

options:
  -l, --label <key=value>        set a label (repeatable)
  --remove-label <key>           remove a label (repeatable)
  -a, --annotation <key=value>   set an annotation (repeatable)
  --remove-annotation <key>      remove an annotation (repeatable)
  -t, --tag <tag>                tag the result in the image's repository
  --json                         the result as JSON
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage mutate 127.0.0.1:5000/app:v1 --label org.opencontainers.image.version=1.2.3 --tag v1
  stowage mutate store:app:v1 --annotation org.opencontainers.image.source=https://git.example/app
  stowage mutate registry.example/app@sha256:... --remove-label maintainer --json`;

/** `key=value` flags and `key` removals as one edit map; a malformed pair is a usage error. */
function edits(
  flag: string,
  sets: readonly string[] | undefined,
  removeFlag: string,
  removals: readonly string[] | undefined,
): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const pair of sets ?? []) {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw usageError('mutate', `--${flag} takes key=value, not ${JSON.stringify(pair)}`);
    out[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  for (const key of removals ?? []) {
    if (!key) throw usageError('mutate', `--${removeFlag} takes a key`);
    if (key in out)
      throw usageError('mutate', `--${flag} and --${removeFlag} both name ${JSON.stringify(key)}`);
    out[key] = null;
  }
  return out;
}

export const mutateCommand = defineCommand({
  name: 'mutate',
  synopsis: 'mutate <image>',
  summary: 'change labels and annotations, pushing a new manifest',
  usage: USAGE,
  help: HELP,
  options: {
    label: { type: 'string', multiple: true, short: 'l' },
    'remove-label': { type: 'string', multiple: true },
    annotation: { type: 'string', multiple: true, short: 'a' },
    'remove-annotation': { type: 'string', multiple: true },
    tag: { type: 'string', short: 't' },
    json: { type: 'boolean' },
    ...REMOTE_OPTIONS,
  },
  async run({ operands, values }) {
    const image = oneOperand('mutate', operands, 'an image reference');
    const labels = edits('label', values.label, 'remove-label', values['remove-label']);
    const annotations = edits(
      'annotation',
      values.annotation,
      'remove-annotation',
      values['remove-annotation'],
    );
    if (Object.keys(labels).length + Object.keys(annotations).length === 0) {
      throw usageError('mutate', 'mutate needs a change: --label, --annotation or a removal');
    }
    if (values.tag !== undefined && !isValidTag(values.tag)) {
      throw usageError('mutate', `--tag ${JSON.stringify(values.tag)} is not a valid tag`);
    }
    await using remotes = new Remotes('mutate', values, { writes: true });
    const remote = await remotes.open(image);
    const { mutateImage } = await import('@stowage/copy');
    const result = await mutateImage(
      { registry: remote.registry, repository: remote.reference.repository, reference: remote.target },
      { labels, annotations, ...(values.tag !== undefined ? { tag: values.tag } : {}) },
    );
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ ...result, repository: Remotes.label(remote.reference) })}\n`
        : `${Remotes.label(remote.reference)}@${result.digest}\n`,
    );
    return 0;
  },
});
