// stowage stages ls, show, by-digest, reject, rm, copy-to-final: werf's build stages in a
// registry repository (werf's --repo), read and changed through @stowage/stages-storage, and
// across repositories (--secondary-repo, --cache-repo, --final-repo) through
// @stowage/storage-manager as werf's storage manager does it. The record commands
// (managed images, metadata) are in stages-records.ts.

import { goJson, type Logger, parseReference } from '@stowage/oci';
import type { ImageInfo, StageDesc, StageID, StagesStorage } from '@stowage/stages-storage';
import type { StorageManager } from '@stowage/storage-manager';
import {
  defineCommand,
  GENERAL_OPTIONS_HELP,
  type OptionTable,
  oneOperand,
  quoted,
  usageError,
} from './command.js';
import { REGISTRY_OPTIONS_HELP, REMOTE_OPTIONS, Remotes } from './remote.js';

/** Options of every stages command: the repository and how to reach its registry. */
export const REPO_OPTIONS = {
  repo: { type: 'string' },
  'plain-http': REMOTE_OPTIONS['plain-http'],
  insecure: REMOTE_OPTIONS.insecure,
  authfile: REMOTE_OPTIONS.authfile,
} as const satisfies OptionTable;

export const REPO_HELP = `  --repo <host/path>     the stages repository, as werf's --repo: registry host[:port] and path
                         (required; no tag, no digest)`;

export const REGISTRY_HELP = REGISTRY_OPTIONS_HELP;

export const PROJECT_OPTION = { project: { type: 'string' } } as const satisfies OptionTable;

export const PROJECT_HELP = `  --project <name>       the werf project (werf.yaml's project:), written as the werf label of
                         the records this command pushes (required)`;

export const JSON_OPTION = { json: { type: 'boolean' } } as const satisfies OptionTable;

export const PARALLEL_OPTION = { 'parallel-tasks-limit': { type: 'string' } } as const satisfies OptionTable;

export const PARALLEL_HELP = `  --parallel-tasks-limit <n>  tasks run at once, 1 to 1024 (default 5, as werf)`;

/**
 * The project name of storages that write nothing: the package asks for one, and only
 * records and retired tags carry it, which the read commands never push.
 */
const READING_PROJECT = 'stowage';

/** A repository as werf's --repo names it. */
export interface RepoAddress {
  /** As given: `host[:port]/path`, the prefix of every stage image name. */
  readonly address: string;
  readonly host: string;
  readonly repository: string;
}

/** A `--repo`-like value checked: a registry host and a path, nothing else. */
export function parseRepo(command: string, flag: string, text: string): RepoAddress {
  const shape = `${flag} is a registry host[:port] and a repository path (werf's --repo: registry.example/group/app)`;
  let reference: ReturnType<typeof parseReference>;
  try {
    reference = parseReference(text, { normalize: false });
  } catch (error) {
    throw usageError(command, `${shape}: ${(error as Error).message}`);
  }
  const { registry, repository } = reference;
  if (reference.tag !== undefined || reference.digest !== undefined || text !== `${registry}/${repository}`)
    throw usageError(command, `${shape}, not ${JSON.stringify(text)}`);
  return { address: text, host: registry, repository };
}

/** The `--repo` of a command, required. */
export function repoOf(command: string, values: { readonly repo?: string | undefined }): RepoAddress {
  if (values.repo === undefined)
    throw usageError(
      command,
      `${command} needs --repo <host/path> (the stages repository, as werf's --repo)`,
    );
  return parseRepo(command, '--repo', values.repo);
}

/** The `--project` of a command that writes records, required. */
export function projectOf(command: string, values: { readonly project?: string | undefined }): string {
  const project = values.project;
  if (project === undefined)
    throw usageError(
      command,
      `${command} needs --project <name> (werf.yaml's project: the werf label of what it writes)`,
    );
  if (!/^[^\s]+$/.test(project))
    throw usageError(command, `--project is a werf project name, not ${JSON.stringify(project)}`);
  return project;
}

/** `--parallel-tasks-limit`, checked (werf's default 5). */
export function parallelOf(
  command: string,
  values: { readonly 'parallel-tasks-limit'?: string | undefined },
) {
  const text = values['parallel-tasks-limit'];
  if (text === undefined) return 5;
  const limit = /^[0-9]{1,4}$/.test(text) ? Number(text) : Number.NaN;
  if (!(limit >= 1 && limit <= 1024))
    throw usageError(
      command,
      `--parallel-tasks-limit is a whole number from 1 to 1024, not ${JSON.stringify(text)}`,
    );
  return limit;
}

/** No operands for a command that takes none. */
export function noOperands(command: string, operands: readonly string[]): void {
  if (operands.length > 0)
    throw usageError(command, `${command} takes no arguments, not ${quoted(operands)}`);
}

/** A stages storage over `repo` (its registry opened through `remotes`). */
export async function openStorage(
  remotes: Remotes,
  repo: RepoAddress,
  project: string = READING_PROJECT,
): Promise<StagesStorage> {
  const [{ createRepoStagesStorage }, registry] = await Promise.all([
    import('@stowage/stages-storage'),
    remotes.registry(repo.host),
  ]);
  return createRepoStagesStorage({
    registry,
    address: repo.address,
    repository: repo.repository,
    project,
  });
}

type StageRef = Pick<StageID, 'digest' | 'creationTs'>;

const STAGE_ID = /^([0-9a-f]{56})(?:-([1-9][0-9]{0,15}))?$/;

/** `<digest>-<creationTs>` (or the bare digest of a multiplatform stage), checked. */
export function parseStageId(command: string, text: string): StageRef {
  const match = STAGE_ID.exec(text);
  const creationTs = match?.[2] === undefined ? 0 : Number(match[2]);
  if (!match || !Number.isSafeInteger(creationTs))
    throw usageError(
      command,
      `${JSON.stringify(text)} is not a stage ID: <digest>-<creationTs>, 56 lowercase hex digits, a dash and Unix milliseconds (the digest alone for a multiplatform stage)`,
    );
  return { digest: match[1] as string, creationTs };
}

/** werf's `StageID.String()`. */
export function stageIdText(stage: StageRef): string {
  return stage.creationTs === 0 ? stage.digest : `${stage.digest}-${stage.creationTs}`;
}

const sameStage = (a: StageRef) => (b: StageRef) => a.digest === b.digest && a.creationTs === b.creationTs;

/** Stage IDs once each, in the order given. */
function distinctStages(command: string, operands: readonly string[]): StageRef[] {
  const seen = new Set<string>();
  const stages: StageRef[] = [];
  for (const text of operands) {
    const stage = parseStageId(command, text);
    if (seen.has(stageIdText(stage))) continue;
    seen.add(stageIdText(stage));
    stages.push(stage);
  }
  return stages;
}

/** One stage in the JSON of the listings. */
interface StageEntry {
  readonly id: string;
  readonly digest: string;
  readonly creationTs: number;
  /** The stage image: `<repo>:<id>`. */
  readonly name: string;
}

function entryOf(storage: StagesStorage, stage: StageRef): StageEntry {
  return {
    id: stageIdText(stage),
    digest: stage.digest,
    creationTs: stage.creationTs,
    name: storage.stageImageName(stage),
  };
}

/** Oldest first, then by digest. */
const byCreation = (a: StageRef, b: StageRef) =>
  a.creationTs - b.creationTs || (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0);

/** The packages' warnings (a cache repo that failed, a stage without a description) on stderr. */
export function stderrWarnings(): Logger {
  return {
    warn(fields, message) {
      const f = fields as { stage?: unknown; storage?: unknown; err?: unknown };
      const about = [f.stage, f.storage].filter((v) => typeof v === 'string').join(' in ');
      const err = f.err as { code?: unknown; message?: unknown } | undefined;
      const cause =
        err && typeof err.message === 'string'
          ? `: ${typeof err.code === 'string' ? `${err.code}: ` : ''}${err.message}`
          : '';
      process.stderr.write(
        `stowage: warning: ${message ?? 'warning'}${about ? ` (${about})` : ''}${cause}\n`,
      );
    },
  };
}

const LS_USAGE = 'usage: stowage stages ls [options] --repo <host/path>';

export const stagesLsCommand = defineCommand({
  name: 'stages ls',
  synopsis: 'stages ls',
  summary: 'list the build stages of a werf repository',
  usage: LS_USAGE,
  help: `${LS_USAGE}

Lists every stage of the repository, as werf selects them from its tags: one stage ID
(<digest>-<creationTs>, or the digest alone for a multiplatform stage) per line, oldest first.
Rejected stages are listed too (stowage stages by-digest leaves them out). With --json:
{"repo","stages":[{"id","digest","creationTs","name"}]}, stable; name is <repo>:<id>.

options:
${REPO_HELP}
  --json                 the stages as one JSON object
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage stages ls --repo registry.example/group/app
  stowage stages ls --repo 127.0.0.1:5000/werf/app --json`,
  options: { ...REPO_OPTIONS, ...JSON_OPTION },
  async run({ operands, values }) {
    noOperands('stages ls', operands);
    const repo = repoOf('stages ls', values);
    await using remotes = new Remotes('stages ls', values);
    const storage = await openStorage(remotes, repo);
    const stages = (await storage.listStageIDs()).sort(byCreation);
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ repo: repo.address, stages: stages.map((s) => entryOf(storage, s)) })}\n`
        : stages.map((s) => `${stageIdText(s)}\n`).join(''),
    );
    return 0;
  },
});

/** Unix ns (whole seconds) as RFC 3339, or '' for none. */
function createdText(unixNano: number): string {
  return unixNano > 0 ? new Date(unixNano / 1e6).toISOString().replace('.000Z', 'Z') : '';
}

/** `show`'s lines: werf's image.Info field names, one value per line. */
function infoLines(info: ImageInfo, indent = ''): string[] {
  const lines = [
    `name: ${info.name}`,
    `repoDigest: ${info.repoDigest}`,
    `ID: ${info.id}`,
    `parentID: ${info.parentId}`,
    `size: ${info.size}`,
    `created: ${createdText(info.createdAtUnixNano)}`,
    `isIndex: ${info.isIndex}`,
    ...(info.env ?? []).map((e) => `env: ${e}`),
    ...(info.onBuild ?? []).map((o) => `onBuild: ${o}`),
    ...Object.keys(info.volumes ?? {}).map((v) => `volume: ${v}`),
    ...Object.entries(info.labels ?? {}).map(([k, v]) => `label: ${k}=${v}`),
  ].map((line) => `${indent}${line}`);
  for (const child of info.index ?? []) lines.push(`${indent}child:`, ...infoLines(child, `${indent}  `));
  return lines;
}

const SHOW_USAGE = 'usage: stowage stages show [options] --repo <host/path> <stage-id>';

export const stagesShowCommand = defineCommand({
  name: 'stages show',
  synopsis: 'stages show <stage-id>',
  summary: "print a stage's description (werf's image.Info)",
  usage: SHOW_USAGE,
  help: `${SHOW_USAGE}

Prints what werf knows of the stage <stage-id> (<digest>-<creationTs>): its image name, repo
digest, image ID, parent ID, size, creation time, env, labels, and each child of a
multiplatform stage, as "<field>: <value>" lines named as werf's image.Info fields. With
--json: werf's own JSON of the stage description, {"stageID":{"digest","uniqueID",
"isMultiplatform"},"info":{"name","repository","tag","repoDigest","onBuild","env","ID",
"parentID","labels","size","createdAtUnixNano","volumes","IsIndex","Index"}}, stable. A stage
that is not there, or is rejected, is exit code 6.

options:
${REPO_HELP}
  --json                 werf's JSON of the stage description
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage stages show --repo registry.example/group/app \\
    7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7-1700000000123
  stowage stages show --repo 127.0.0.1:5000/werf/app <stage-id> --json`,
  options: { ...REPO_OPTIONS, ...JSON_OPTION },
  async run({ operands, values }) {
    const stage = parseStageId('stages show', oneOperand('stages show', operands, 'a stage ID'));
    const repo = repoOf('stages show', values);
    await using remotes = new Remotes('stages show', values);
    const storage = await openStorage(remotes, repo);
    const desc = await storage.getStageDesc(stage);
    if (!desc) {
      const { StagesStorageError } = await import('@stowage/stages-storage');
      throw new StagesStorageError(
        'STAGE_NOT_FOUND',
        `stage ${stageIdText(stage)} is not in ${repo.address}, or is rejected`,
        { details: { stage: stageIdText(stage), repo: repo.address } },
      );
    }
    if (values.json) {
      const { werfStageDesc } = await import('@stowage/stages-storage');
      process.stdout.write(`${goJson(werfStageDesc(desc))}\n`);
    } else {
      process.stdout.write(`stageID: ${stageIdText(desc.stageID)}\n${infoLines(desc.info).join('\n')}\n`);
    }
    return 0;
  },
});

/** Every `--<flag>` value parsed as a repository. */
function reposOf(command: string, flag: string, texts: readonly string[] | undefined): RepoAddress[] {
  return (texts ?? []).map((text) => parseRepo(command, `--${flag}`, text));
}

/** A storage manager over stages storages the commands opened: nothing kept in werf's manifest cache. */
async function openManager(options: {
  readonly primary: StagesStorage;
  readonly final?: StagesStorage;
  readonly secondary?: readonly StagesStorage[];
  readonly cache?: readonly StagesStorage[];
  readonly parallelTasksLimit: number;
  readonly home?: string | undefined;
}): Promise<StorageManager> {
  const { createStorageManager } = await import('@stowage/storage-manager');
  const { home, ...rest } = options;
  return createStorageManager({
    project: options.primary.project,
    ...rest,
    ...(home === undefined ? {} : { home }),
    manifestCache: false,
    logger: stderrWarnings(),
  });
}

const BY_DIGEST_USAGE =
  'usage: stowage stages by-digest [options] --repo <host/path> [--secondary-repo <repo>]... [--cache-repo <repo>]... <digest>';

export const stagesByDigestCommand = defineCommand({
  name: 'stages by-digest',
  synopsis: 'stages by-digest <digest>',
  summary: 'list the stages of one digest, rejected ones left out',
  usage: BY_DIGEST_USAGE,
  help: `${BY_DIGEST_USAGE}

Lists the stage IDs of <digest> (56 hex digits) that a werf build could reuse, one per line,
oldest first: rejected stages and stages without a description are left out. It looks where
werf's storage manager looks: in --repo, and when that has none, in each --secondary-repo in
turn (read only: nothing is copied); descriptions are read from the --cache-repo ones first.
With --json: {"repo","digest","foundIn","stages":[{"id","digest","creationTs","name"}]},
stable: foundIn is the repository the stages are in (null when none is), name the stage image
there. Nothing is written to werf's local manifest cache.

options:
${REPO_HELP}
  --secondary-repo <repo>  a read-only repository to look in when --repo has none
                           (repeatable, looked in in order, as werf's)
  --cache-repo <repo>      a repository read before the others (repeatable, as werf's);
                           its failures are only warned about
${PARALLEL_HELP}
  --json                 the stages as one JSON object
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage stages by-digest --repo registry.example/group/app \\
    7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7
  stowage stages by-digest --repo 127.0.0.1:5000/werf/app --secondary-repo 127.0.0.1:5000/werf/base <digest> --json`,
  options: {
    ...REPO_OPTIONS,
    'secondary-repo': { type: 'string', multiple: true },
    'cache-repo': { type: 'string', multiple: true },
    ...PARALLEL_OPTION,
    ...JSON_OPTION,
  },
  async run({ operands, values }) {
    const name = 'stages by-digest';
    const digest = oneOperand(name, operands, 'a stage digest');
    if (!/^[0-9a-f]{56}$/.test(digest))
      throw usageError(name, `${JSON.stringify(digest)} is not a stage digest: 56 lowercase hex digits`);
    const repo = repoOf(name, values);
    const secondaryRepos = reposOf(name, 'secondary-repo', values['secondary-repo']);
    const cacheRepos = reposOf(name, 'cache-repo', values['cache-repo']);
    const parallelTasksLimit = parallelOf(name, values);
    await using remotes = new Remotes(name, values);
    const primary = await openStorage(remotes, repo);
    const secondary = await Promise.all(secondaryRepos.map((r) => openStorage(remotes, r)));
    const cache = await Promise.all(cacheRepos.map((r) => openStorage(remotes, r)));
    await using manager = await openManager({ primary, secondary, cache, parallelTasksLimit });
    let foundIn: StagesStorage | undefined;
    let descs: StageDesc[] = [];
    for (const storage of [primary, ...secondary]) {
      descs = await manager.getStagesByDigest(digest, { storage });
      if (descs.length > 0) {
        foundIn = storage;
        break;
      }
    }
    const stages = descs.map((d) => d.stageID).sort(byCreation);
    if (values.json) {
      const found = foundIn;
      process.stdout.write(
        `${JSON.stringify({
          repo: repo.address,
          digest,
          foundIn: found?.address ?? null,
          stages: found ? stages.map((s) => entryOf(found, s)) : [],
        })}\n`,
      );
    } else {
      if (foundIn && foundIn !== primary)
        process.stderr.write(
          `stowage: ${digest} has no stages in ${repo.address}; found in ${foundIn.address}\n`,
        );
      process.stdout.write(stages.map((s) => `${stageIdText(s)}\n`).join(''));
    }
    return 0;
  },
});

/** Throws STAGE_NOT_FOUND unless every stage is listed in the storage (one listing, kept for what follows). */
async function requireStages(storage: StagesStorage, stages: readonly StageRef[]): Promise<void> {
  const listed = await storage.listStageIDs({ cache: true });
  const missing = stages.filter((stage) => !listed.some(sameStage(stage)));
  if (missing.length === 0) return;
  const { StagesStorageError } = await import('@stowage/stages-storage');
  const ids = missing.map(stageIdText);
  throw new StagesStorageError(
    'STAGE_NOT_FOUND',
    `${ids.length === 1 ? `stage ${ids[0]} is` : `stages ${ids.join(', ')} are`} not in ${storage.address}`,
    { details: { stages: ids, repo: storage.address } },
  );
}

const REJECT_USAGE = 'usage: stowage stages reject [options] --repo <host/path> --project <name> <stage-id>';

export const stagesRejectCommand = defineCommand({
  name: 'stages reject',
  synopsis: 'stages reject <stage-id>',
  summary: 'mark a stage rejected, so no build reuses it',
  usage: REJECT_USAGE,
  help: `${REJECT_USAGE}

Pushes werf's rejected record of <stage-id> (the tag <stage-id>-rejected), as werf does for a
broken stage: from then on no werf build (and no stowage stages by-digest) picks the stage;
the stage image itself stays until stowage stages rm. A stage rejected already is left as it
is. Prints "rejected <stage-id>" (or "<stage-id> is rejected already"). A stage that is not in
the repository is exit code 6.

options:
${REPO_HELP}
${PROJECT_HELP}
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage stages reject --repo registry.example/group/app --project app \\
    7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7-1700000000123`,
  options: { ...REPO_OPTIONS, ...PROJECT_OPTION },
  async run({ operands, values }) {
    const name = 'stages reject';
    const stage = parseStageId(name, oneOperand(name, operands, 'a stage ID'));
    const repo = repoOf(name, values);
    const project = projectOf(name, values);
    await using remotes = new Remotes(name, values);
    const storage = await openStorage(remotes, repo, project);
    await requireStages(storage, [stage]);
    const live = await storage.listStageIDsByDigest(stage.digest, { cache: true });
    if (!live.some(sameStage(stage))) {
      process.stdout.write(`${stageIdText(stage)} is rejected already\n`);
      return 0;
    }
    await storage.rejectStage(stage);
    process.stdout.write(`rejected ${stageIdText(stage)}\n`);
    return 0;
  },
});

/** What `deleteStage` needs of a stage it has not read: its ID and names (the digest is looked up). */
function unreadDesc(storage: StagesStorage, stage: StageRef): StageDesc {
  const tag = storage.stageTag(stage);
  return {
    stageID: { ...stage, isMultiplatform: stage.creationTs === 0 },
    info: {
      name: storage.stageImageName(stage),
      repository: storage.address,
      tag,
      repoDigest: '',
      onBuild: null,
      env: null,
      id: '',
      parentId: '',
      labels: null,
      size: 0,
      createdAtUnixNano: 0,
      volumes: null,
      isIndex: false,
      index: null,
    },
  };
}

const RM_USAGE = 'usage: stowage stages rm [options] --repo <host/path> --project <name> <stage-id>...';

export const stagesRmCommand = defineCommand({
  name: 'stages rm',
  synopsis: 'stages rm <stage-id>...',
  summary: 'delete stages and their rejected records',
  usage: RM_USAGE,
  help: `${RM_USAGE}

Deletes each stage: its tag, its manifest unless a user tag still points at it, and its
rejected record. A stage that is not there is no failure ("<stage-id>: not in <repo>"). On a
registry that cannot delete tags (docker-registry 2.8) the tag is first pointed at a throwaway
manifest labelled with --project, which is then deleted. Prints "removed <stage-id>" per stage;
with --json {"repo","removed":[<stage-id>...],"absent":[<stage-id>...]}, stable.

options:
${REPO_HELP}
${PROJECT_HELP}
  --json                 what was removed and what was not there, as one JSON object
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage stages rm --repo registry.example/group/app --project app \\
    7d391a82ee3f0e574361c594fe737dc6db627be9667a470ab7581da7-1700000000123`,
  options: { ...REPO_OPTIONS, ...PROJECT_OPTION, ...JSON_OPTION },
  async run({ operands, values }) {
    const name = 'stages rm';
    if (operands.length === 0) throw usageError(name, `${name} needs one stage ID or more`);
    const stages = distinctStages(name, operands);
    const repo = repoOf(name, values);
    const project = projectOf(name, values);
    await using remotes = new Remotes(name, values);
    const storage = await openStorage(remotes, repo, project);
    // one listing: what is there, and the candidates the deletes check for shared digests
    const listed = await storage.listStageIDs({ cache: true });
    const removed: string[] = [];
    const absent: string[] = [];
    for (const stage of stages) {
      await storage.deleteStage(unreadDesc(storage, stage));
      const there = listed.some(sameStage(stage));
      (there ? removed : absent).push(stageIdText(stage));
      if (!values.json)
        process.stdout.write(
          there ? `removed ${stageIdText(stage)}\n` : `${stageIdText(stage)}: not in ${repo.address}\n`,
        );
    }
    if (values.json) process.stdout.write(`${JSON.stringify({ repo: repo.address, removed, absent })}\n`);
    return 0;
  },
});

const COPY_USAGE =
  'usage: stowage stages copy-to-final [options] --repo <host/path> --final-repo <host/path> <stage-id>...';

export const stagesCopyToFinalCommand = defineCommand({
  name: 'stages copy-to-final',
  synopsis: 'stages copy-to-final <stage-id>...',
  summary: 'copy stages into the final repo, unless there already',
  usage: COPY_USAGE,
  help: `${COPY_USAGE}

Copies each stage from --repo into --final-repo as werf's storage manager does for the stages
of final images (every digest kept); a stage the final repo has already is skipped. Prints
"copied <stage-id> to <final image>" or "<stage-id>: in <final-repo> already" per stage, as
each finishes; with --json {"repo","finalRepo","stages":[{"id","name","action"}]}, stable,
action "copied" or "skipped", name the stage image in the final repo. A stage that is not in
--repo is exit code 6, before anything is copied. Like werf, each copy is noted in werf's LRU
image record under --home-dir.

options:
${REPO_HELP}
  --final-repo <host/path>  the final repository (werf's --final-repo; required)
${PARALLEL_HELP}
  --home-dir <dir>       werf's home (default $WERF_HOME, else ~/.werf)
  --json                 what was copied and skipped, as one JSON object
${REGISTRY_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage stages copy-to-final --repo registry.example/group/app \\
    --final-repo registry.example/group/app-final <stage-id> <stage-id>
  stowage stages copy-to-final --repo 127.0.0.1:5000/werf/app --final-repo 127.0.0.1:5000/final/app \\
    --parallel-tasks-limit 2 --json <stage-id>`,
  options: {
    ...REPO_OPTIONS,
    'final-repo': { type: 'string' },
    ...PARALLEL_OPTION,
    'home-dir': { type: 'string' },
    ...JSON_OPTION,
  },
  async run({ operands, values }) {
    const name = 'stages copy-to-final';
    if (operands.length === 0) throw usageError(name, `${name} needs one stage ID or more`);
    const stages = distinctStages(name, operands);
    const repo = repoOf(name, values);
    if (values['final-repo'] === undefined)
      throw usageError(name, `${name} needs --final-repo <host/path> (werf's --final-repo)`);
    const finalRepo = parseRepo(name, '--final-repo', values['final-repo']);
    if (finalRepo.address === repo.address)
      throw usageError(name, '--final-repo is another repository than --repo');
    const parallelTasksLimit = parallelOf(name, values);
    if (values['home-dir'] === '') throw usageError(name, '--home-dir needs a directory');
    await using remotes = new Remotes(name, values);
    const primary = await openStorage(remotes, repo);
    const final = await openStorage(remotes, finalRepo);
    await requireStages(primary, stages);
    await using manager = await openManager({
      primary,
      final,
      parallelTasksLimit,
      home: values['home-dir'],
    });
    const { mapLimited } = await import('@stowage/storage-manager');
    const done = await mapLimited(stages, parallelTasksLimit, async (stage) => {
      // the manager's own test: listed in the final repo, with a description there
      const listed = (await final.listStageIDs({ cache: true })).some(sameStage(stage));
      const there = listed && (await final.getStageDesc(stage, { cache: true })) !== null;
      await manager.copyStageIntoFinalStorage(stage);
      const entry = {
        id: stageIdText(stage),
        name: final.stageImageName(stage),
        action: there ? 'skipped' : 'copied',
      };
      if (!values.json)
        process.stdout.write(
          there ? `${entry.id}: in ${finalRepo.address} already\n` : `copied ${entry.id} to ${entry.name}\n`,
        );
      return entry;
    });
    if (values.json)
      process.stdout.write(
        `${JSON.stringify({ repo: repo.address, finalRepo: finalRepo.address, stages: done })}\n`,
      );
    return 0;
  },
});
