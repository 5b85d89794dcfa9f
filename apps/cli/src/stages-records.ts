// stowage managed-images ls|add|rm, stowage stages metadata ls, custom-tags ls,
// import-metadata ls|show: werf's record images beside the stages of a repository
// (@stowage/stages-storage), named as werf's commands name them.

import { RegistryError } from '@stowage/oci';
import type { ImageMetadataGroups } from '@stowage/stages-storage';
import { defineCommand, GENERAL_OPTIONS_HELP, oneOperand, usageError } from './command.js';
import { Remotes, type RemoteValues } from './remote.js';
import {
  JSON_OPTION,
  noOperands,
  openStorage,
  PARALLEL_HELP,
  PARALLEL_OPTION,
  PROJECT_HELP,
  PROJECT_OPTION,
  parallelOf,
  projectOf,
  REGISTRY_HELP,
  REPO_HELP,
  REPO_OPTIONS,
  repoOf,
} from './stages.js';

/** werf's name of the nameless image (`image: ~`, or none) on the command line and in its listings. */
const NAMELESS = '~';

/** The one image name a managed-images command takes (`~` the nameless image, as werf). */
function imageNameOf(command: string, operands: readonly string[]): string {
  const name = oneOperand(command, operands, 'an image name (werf.yaml image:, ~ for the nameless one)');
  if (name !== NAMELESS && !/^[^\s]+$/.test(name))
    throw usageError(command, `${JSON.stringify(name)} is not a werf image name`);
  return name === NAMELESS ? '' : name;
}

const shown = (name: string) => (name === '' ? NAMELESS : name);

const MI_LS_USAGE = 'usage: stowage managed-images ls [options] --repo <host/path>';

export const managedImagesLsCommand = defineCommand({
  name: 'managed-images ls',
  synopsis: 'managed-images ls',
  summary: 'list the images werf cleanup keeps (managed images)',
  usage: MI_LS_USAGE,
  help: `${MI_LS_USAGE}

Lists the managed images of the repository, the werf images whose stages a cleanup keeps: one
name per line, ~ for the nameless image, as werf managed-images ls prints them. With --json:
{"repo","images":[...]}, stable ("" for the nameless image).

options:
${REPO_HELP}
  --json                 the names as one JSON object
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage managed-images ls --repo registry.example/group/app
  stowage managed-images ls --repo 127.0.0.1:5000/werf/app --json`,
  options: { ...REPO_OPTIONS, ...JSON_OPTION },
  async run({ operands, values }) {
    noOperands('managed-images ls', operands);
    const repo = repoOf('managed-images ls', values);
    await using remotes = new Remotes('managed-images ls', values);
    const images = await (await openStorage(remotes, repo)).listManagedImages();
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ repo: repo.address, images })}\n`
        : images.map((name) => `${shown(name)}\n`).join(''),
    );
    return 0;
  },
});

/** managed-images add and rm: the record pushed or deleted, nothing done when it is already so. */
async function changeManagedImage(
  change: 'add' | 'rm',
  operands: readonly string[],
  values: Parameters<typeof repoOf>[1] & Parameters<typeof projectOf>[1] & RemoteValues,
): Promise<number> {
  const name = `managed-images ${change}`;
  const image = imageNameOf(name, operands);
  const repo = repoOf(name, values);
  const project = projectOf(name, values);
  await using remotes = new Remotes(name, values);
  const storage = await openStorage(remotes, repo, project);
  const exists = await storage.managedImageExists(image, { cache: true });
  if (exists === (change === 'add')) {
    process.stdout.write(
      `${shown(image)} ${exists ? 'is a managed image already' : 'is not a managed image'}\n`,
    );
    return 0;
  }
  if (change === 'add') await storage.addManagedImage(image);
  else await storage.removeManagedImage(image);
  process.stdout.write(`${change === 'add' ? 'added' : 'removed'} ${shown(image)}\n`);
  return 0;
}

const MI_ADD_USAGE =
  'usage: stowage managed-images add [options] --repo <host/path> --project <name> <image-name>';

export const managedImagesAddCommand = defineCommand({
  name: 'managed-images add',
  synopsis: 'managed-images add <image>',
  summary: 'add a managed image (kept by werf cleanup)',
  usage: MI_ADD_USAGE,
  help: `${MI_ADD_USAGE}

Pushes werf's managed-image record of <image-name> (~ for the nameless image), so a werf
cleanup keeps that image's stages. One that is there already is left as it is. Prints "added
<image-name>" (or "<image-name> is a managed image already").

options:
${REPO_HELP}
${PROJECT_HELP}
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage managed-images add --repo registry.example/group/app --project app backend`,
  options: { ...REPO_OPTIONS, ...PROJECT_OPTION },
  run: ({ operands, values }) => changeManagedImage('add', operands, values),
});

const MI_RM_USAGE =
  'usage: stowage managed-images rm [options] --repo <host/path> --project <name> <image-name>';

export const managedImagesRmCommand = defineCommand({
  name: 'managed-images rm',
  synopsis: 'managed-images rm <image>',
  summary: 'remove a managed image',
  usage: MI_RM_USAGE,
  help: `${MI_RM_USAGE}

Deletes werf's managed-image record of <image-name> (~ for the nameless image); its stages are
left alone. One that is not there is no failure. Prints "removed <image-name>" (or
"<image-name> is not a managed image"). On a registry that cannot delete tags the record's tag
is first pointed at a throwaway manifest labelled with --project.

options:
${REPO_HELP}
${PROJECT_HELP}
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage managed-images rm --repo registry.example/group/app --project app backend`,
  options: { ...REPO_OPTIONS, ...PROJECT_OPTION },
  run: ({ operands, values }) => changeManagedImage('rm', operands, values),
});

/** A metadata group as JSON: stage IDs in byte order, each with its commits. */
function stagesOf(byStage: ReadonlyMap<string, readonly string[]> | undefined) {
  return [...(byStage ?? new Map<string, readonly string[]>())]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([stageId, commits]) => ({ stageId, commits: [...commits] }));
}

function metadataLines(label: string, groups: ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>) {
  return [...groups].flatMap(([key, byStage]) =>
    stagesOf(byStage).flatMap(({ stageId, commits }) =>
      commits.map((commit) => `${label}${key} ${commit} ${stageId}\n`),
    ),
  );
}

const META_USAGE = 'usage: stowage stages metadata ls [options] --repo <host/path> [<image-name>...]';

export const stagesMetadataLsCommand = defineCommand({
  name: 'stages metadata ls',
  synopsis: 'stages metadata ls [<image>...]',
  summary: 'list the image metadata records (commit to stage)',
  usage: META_USAGE,
  help: `${META_USAGE}

Lists werf's image metadata records, the commits each image's last stage was built for
(werf cleanup's input), grouped by the image names given (~ for the nameless image; none
given: the repository's managed images). A record of no such image is listed under its
metadata ID. Lines are "<image-name> <commit> <stage-id>", or "id:<metadata-id> <commit>
<stage-id>". With --json: {"repo","images":[{"name","stages":[{"stageId","commits"}]}],
"notManaged":[{"id","stages":[{"stageId","commits"}]}]}, stable; every image name asked for
is in images, with no stages when it has no records.

options:
${REPO_HELP}
  --json                 the records as one JSON object
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage stages metadata ls --repo registry.example/group/app
  stowage stages metadata ls --repo 127.0.0.1:5000/werf/app backend frontend --json`,
  options: { ...REPO_OPTIONS, ...JSON_OPTION },
  async run({ operands, values }) {
    const repo = repoOf('stages metadata ls', values);
    await using remotes = new Remotes('stages metadata ls', values);
    const storage = await openStorage(remotes, repo);
    const names =
      operands.length > 0
        ? operands.map((n) => (n === NAMELESS ? '' : n))
        : await storage.listManagedImages({ cache: true });
    const { managed, notManaged } = await storage.listImageMetadata(names, { cache: true });
    if (values.json) {
      const images = [...new Set(names)].map((name) => ({ name, stages: stagesOf(managed.get(name)) }));
      const others = [...notManaged].map(([id, byStage]) => ({ id, stages: stagesOf(byStage) }));
      process.stdout.write(`${JSON.stringify({ repo: repo.address, images, notManaged: others })}\n`);
    } else {
      const named: ImageMetadataGroups = new Map([...managed].map(([n, g]) => [shown(n), g]));
      process.stdout.write([...metadataLines('', named), ...metadataLines('id:', notManaged)].join(''));
    }
    return 0;
  },
});

const CT_USAGE = 'usage: stowage stages custom-tags ls [options] --repo <host/path>';

export const stagesCustomTagsLsCommand = defineCommand({
  name: 'stages custom-tags ls',
  synopsis: 'stages custom-tags ls',
  summary: 'list the custom tags of stages, with their metadata',
  usage: CT_USAGE,
  help: `${CT_USAGE}

Lists werf's custom-tag metadata records (werf build --add-custom-tag): "<tag> <stage-id>" per
line, the custom tag and the stage it was put on. With --json:
{"repo","customTags":[{"id","tag","stageId"}]}, stable; id names the record (werf's slug of
the tag).

options:
${REPO_HELP}
${PARALLEL_HELP}
  --json                 the records as one JSON object
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage stages custom-tags ls --repo registry.example/group/app
  stowage stages custom-tags ls --repo 127.0.0.1:5000/werf/app --json`,
  options: { ...REPO_OPTIONS, ...PARALLEL_OPTION, ...JSON_OPTION },
  async run({ operands, values }) {
    const name = 'stages custom-tags ls';
    noOperands(name, operands);
    const repo = repoOf(name, values);
    const limit = parallelOf(name, values);
    await using remotes = new Remotes(name, values);
    const storage = await openStorage(remotes, repo);
    const ids = await storage.listCustomTagMetadataIds();
    const { mapLimited } = await import('@stowage/storage-manager');
    const records = await mapLimited(ids, limit, async (id) => {
      const metadata = await storage.getCustomTagMetadata(id);
      // gone since the listing: left out
      return metadata ? { id, tag: metadata.tag, stageId: metadata.stageId } : undefined;
    });
    const customTags = records.filter((r) => r !== undefined);
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ repo: repo.address, customTags })}\n`
        : customTags.map((r) => `${r.tag} ${r.stageId}\n`).join(''),
    );
    return 0;
  },
});

const IM_LS_USAGE = 'usage: stowage stages import-metadata ls [options] --repo <host/path>';

export const stagesImportMetadataLsCommand = defineCommand({
  name: 'stages import-metadata ls',
  synopsis: 'stages import-metadata ls',
  summary: 'list the import metadata records',
  usage: IM_LS_USAGE,
  help: `${IM_LS_USAGE}

Lists the IDs of werf's import metadata records (what werf knows of each import of files from
another image), one per line. With --json: {"repo","ids":[...]}, stable.

options:
${REPO_HELP}
  --json                 the IDs as one JSON object
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage stages import-metadata ls --repo registry.example/group/app
  stowage stages import-metadata ls --repo 127.0.0.1:5000/werf/app --json`,
  options: { ...REPO_OPTIONS, ...JSON_OPTION },
  async run({ operands, values }) {
    noOperands('stages import-metadata ls', operands);
    const repo = repoOf('stages import-metadata ls', values);
    await using remotes = new Remotes('stages import-metadata ls', values);
    const ids = await (await openStorage(remotes, repo)).listImportMetadataIds();
    process.stdout.write(
      values.json ? `${JSON.stringify({ repo: repo.address, ids })}\n` : ids.map((id) => `${id}\n`).join(''),
    );
    return 0;
  },
});

const IM_SHOW_USAGE = 'usage: stowage stages import-metadata show [options] --repo <host/path> <id>';

export const stagesImportMetadataShowCommand = defineCommand({
  name: 'stages import-metadata show',
  synopsis: 'stages import-metadata show <id>',
  summary: 'print one import metadata record',
  usage: IM_SHOW_USAGE,
  help: `${IM_SHOW_USAGE}

Prints the import metadata record <id> (an ID from stowage stages import-metadata ls):
"importSourceId: ...", "sourceStageId: ..." and "checksum: ..." lines. With --json:
{"id","importSourceId","sourceStageId","checksum"}, stable. A record that is not there is exit
code 6.

options:
${REPO_HELP}
  --json                 the record as one JSON object
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage stages import-metadata show --repo registry.example/group/app <id>
  stowage stages import-metadata show --repo 127.0.0.1:5000/werf/app <id> --json`,
  options: { ...REPO_OPTIONS, ...JSON_OPTION },
  async run({ operands, values }) {
    const name = 'stages import-metadata show';
    const id = oneOperand(name, operands, 'an import metadata ID');
    if (!/^[A-Za-z0-9_.-]{1,100}$/.test(id))
      throw usageError(name, `${JSON.stringify(id)} is not an import metadata ID`);
    const repo = repoOf(name, values);
    await using remotes = new Remotes(name, values);
    const metadata = await (await openStorage(remotes, repo)).getImportMetadata(id);
    if (!metadata)
      throw new RegistryError('MANIFEST_UNKNOWN', `no import metadata record ${id} in ${repo.address}`, {
        details: { id, repo: repo.address },
      });
    const { importSourceId, sourceStageId, checksum } = metadata;
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ id, importSourceId, sourceStageId, checksum })}\n`
        : `importSourceId: ${importSourceId}\nsourceStageId: ${sourceStageId}\nchecksum: ${checksum}\n`,
    );
    return 0;
  },
});
