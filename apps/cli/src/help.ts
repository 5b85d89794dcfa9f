// What `--help` prints (to stdout) and what follows a usage error's line (on stderr).
import type { CommandName } from './args.js';

const URL_EXAMPLE = 'postgres://postgres@127.0.0.1:5432/registry';

const SYNOPSIS = `usage: stowage <command> [options]
  stowage import [options] <registry-root>   import a docker-registry storage tree into the database
  stowage sync --config <file> --root <dir>  mirror the images a sync config names into a local store
  stowage db migrate [options]               create the database or bring its schema up to date
  stowage db status [options]                show applied and pending migrations (changes nothing)
  stowage --version | --help                 stowage <command> --help shows a command's own help`;

const DATABASE_OPTIONS = `  --database-url <url>   PostgreSQL: postgres://user@host:5432/database
  --data-dir <dir>       the embedded (PGlite) database's directory instead
                         (neither given: STOWAGE_DATABASE_URL, else DATABASE_URL, else the
                         embedded database in ./.stowage-metadata)`;

const GENERAL_OPTIONS = `  --debug                a failure prints its stack trace too
  -h, --help             this help`;

export const EXIT_CODES = `exit codes:
  0    done
  1    any other failure (run it again with --debug for the stack trace)
  2    usage error: an unknown command or option, a missing or invalid value
  3    the registry root is not a distribution tree, lacks a --repository asked for,
       or holds a manifest that stops the import; sync: its config file is unreadable
       or invalid
  4    the database: an invalid URL, unreachable, missing, not migrated, or failing
  5    sync: some image (or an upstream as a whole) failed; the others are synced
  130  interrupted (SIGINT); running the same command again continues`;

const TOP = `stowage: the command line of the Stowage toolkit.

${SYNOPSIS}

options of every command:
${DATABASE_OPTIONS}
${GENERAL_OPTIONS}
  -v, --version          print the version

${EXIT_CODES}

example:
  stowage db migrate --database-url ${URL_EXAMPLE}
  stowage import /var/lib/docker-registry --database-url ${URL_EXAMPLE}`;

const DB = `usage:
  stowage db migrate [options]   create the database or bring its schema up to date
  stowage db status [options]    show applied and pending migrations (changes nothing)

stowage db migrate --help and stowage db status --help show their options.`;

const IMPORT_USAGE = 'usage: stowage import [options] <registry-root>';

const IMPORT = `${IMPORT_USAGE}

Imports a docker-registry (distribution v2) storage tree into the metadata database, as GitLab's
importer does. <registry-root> is the registry's storage root (storage.filesystem.rootdirectory,
the directory holding docker/registry/v2) or that v2 directory; any other path is refused before
anything is written. The database must exist and be migrated first (stowage db migrate).

steps (none given: all three, in order):
  --step-one, --pre-import          pre-import tagged manifests only
  --step-two, --all-repositories    import tags (and manifests not pre-imported)
  --step-three, --common-blobs      record every blob of the tree

options:
  --repository <name>               only this repository (repeatable); lockfiles are left alone
  --dry-run                         one transaction, rolled back; no lockfile is read or written
  --tag-concurrency <n>             tag links read at once, 1 to 5 (default 1, as GitLab)
  --pre-import-skip-recent <hours>  skip repositories pre-imported this recently
  --row-count                       print row counts when done
  --log-file <file>                 detailed JSON-lines log (default
                                    <RFC3339>-registry-import.log in --log-directory)
  --log-directory <dir>             where the default log file goes (default: the current directory)
  --log-to-stdout                   no progress bar and no log file: the log goes to stdout
  --no-lockfiles                    leave GitLab's lockfiles alone
${DATABASE_OPTIONS}
${GENERAL_OPTIONS}

examples:
  stowage db migrate --database-url ${URL_EXAMPLE}
  stowage import /var/lib/docker-registry --dry-run --database-url ${URL_EXAMPLE}
  stowage import /var/lib/docker-registry --row-count --database-url ${URL_EXAMPLE}

Progress and warnings go to stderr, the summary is one JSON line on stdout. SIGINT rolls back the
repository in progress; the same command run again continues. Exit codes: stowage --help.`;

const SYNC_USAGE = 'usage: stowage sync --config <file> --root <dir> [--json] [--upstream <n>]...';

const SYNC = `${SYNC_USAGE}

Runs one sync pass: for each upstream of the config with content rules (or repositories), lists
the repositories and tags the rules keep and copies into the store at --root what is missing or
changed, digests preserved; an image whose tag already holds the upstream digest is skipped. An
image that fails leaves nothing of itself in the store, and the others go on.

The config file is YAML or JSON: a zot config (extensions.sync), a stowage-server config (sync:),
or the section alone (registries: [...]), in zot's shape. A credentials file it names is read
relative to it.

options:
  --config <file>     the sync configuration
  --root <dir>        the image store to mirror into (created when missing; a stowage-server
                      storage root works, its state beside the store in <dir>/.sync)
  --upstream <n>      only registries[n] (repeatable); default every upstream with content
  --json              print the report (every image, its outcome and error) as JSON
${GENERAL_OPTIONS}

examples:
  stowage sync --config /etc/zot/config.json --root /srv/mirror
  stowage sync --config sync.yml --root /srv/mirror --upstream 1 --json

On a terminal one updating line on stderr shows the images done and the bytes copied. stdout gets
"synced N, skipped N, failed N (X MiB in Y s)" and one line per failure, or the JSON report.
Exit codes: 0 nothing failed, 5 some image failed, 3 the config, 2 usage, 130 interrupted.`;

const MIGRATE_USAGE = 'usage: stowage db migrate [--database-url <url> | --data-dir <dir>]';

const MIGRATE = `${MIGRATE_USAGE}

Applies the migrations this version has and the database lacks, in one transaction. Without a
database URL it creates the embedded database in --data-dir when there is none. A database holding
a migration this version does not know, or one changed since it was applied, is refused.

options:
${DATABASE_OPTIONS}
${GENERAL_OPTIONS}

example:
  stowage db migrate --database-url ${URL_EXAMPLE}`;

const STATUS_USAGE = 'usage: stowage db status [--database-url <url> | --data-dir <dir>]';

const STATUS = `${STATUS_USAGE}

Prints the applied and pending migrations as one JSON line: {"applied":[...],"pending":[...]}.
It only reads: a database never migrated shows every migration pending, and a missing embedded
database is reported (exit code 4), never created.

options:
${DATABASE_OPTIONS}
${GENERAL_OPTIONS}

example:
  stowage db status --data-dir ./.stowage-metadata`;

/** The full help of a command, or the top one (`db` alone: its two subcommands). */
export function helpText(command: CommandName | undefined, db = false): string {
  if (command === 'import') return IMPORT;
  if (command === 'sync') return SYNC;
  if (command === 'db migrate') return MIGRATE;
  if (command === 'db status') return STATUS;
  return db ? DB : TOP;
}

/** What follows a usage error's line: the usage of the command it was about. */
export function usageText(command: CommandName | undefined): string {
  if (command === 'import') return IMPORT_USAGE;
  if (command === 'sync') return SYNC_USAGE;
  if (command === 'db migrate') return MIGRATE_USAGE;
  if (command === 'db status') return STATUS_USAGE;
  return SYNOPSIS;
}
