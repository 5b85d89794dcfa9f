// stowage ls, catalog: a repository's tags and a registry's repositories, every page.
import { defineCommand, GENERAL_OPTIONS_HELP, oneOperand } from './command.js';
import { REMOTE_OPTIONS, REMOTE_OPTIONS_HELP, Remotes } from './remote.js';

const LS_USAGE = 'usage: stowage ls [options] <repository>';

export const lsCommand = defineCommand({
  name: 'ls',
  synopsis: 'ls <repository>',
  summary: "list a repository's tags",
  usage: LS_USAGE,
  help: `${LS_USAGE}

Lists the tags of <repository> (registry/repository, docker:// allowed), one per line in the
registry's order, following every page. With --json: {"repository","tags":[...]}, stable.

options:
  --json                 the tags as one JSON object
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage ls 127.0.0.1:5000/app
  stowage ls docker://registry.example/team/app --json`,
  options: { json: { type: 'boolean' }, ...REMOTE_OPTIONS },
  async run({ operands, values }) {
    const text = oneOperand('ls', operands, 'a repository');
    await using remotes = new Remotes('ls', values);
    const { registry, reference } = await remotes.open(text, 'repository');
    const { items } = await registry.listTags(reference.repository);
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ repository: Remotes.label(reference), tags: items })}\n`
        : items.map((tag) => `${tag}\n`).join(''),
    );
    return 0;
  },
});

const CATALOG_USAGE = 'usage: stowage catalog [options] <registry>';

export const catalogCommand = defineCommand({
  name: 'catalog',
  synopsis: 'catalog <registry>',
  summary: "list a registry's repositories",
  usage: CATALOG_USAGE,
  help: `${CATALOG_USAGE}

Lists the repositories of <registry> (host[:port]) from its catalog, one per line, following
every page. With --json: {"registry","repositories":[...]}, stable.

options:
  --json                 the repositories as one JSON object
${REMOTE_OPTIONS_HELP}
${GENERAL_OPTIONS_HELP}

examples:
  stowage catalog 127.0.0.1:5000
  stowage catalog registry.example --json`,
  options: { json: { type: 'boolean' }, ...REMOTE_OPTIONS },
  async run({ operands, values }) {
    const host = oneOperand('catalog', operands, 'a registry')
      .replace(/^docker:\/\//, '')
      .replace(/\/+$/, '');
    await using remotes = new Remotes('catalog', values);
    const { items } = await (await remotes.registry(host)).listRepositories();
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ registry: host, repositories: items })}\n`
        : items.map((r) => `${r}\n`).join(''),
    );
    return 0;
  },
});
