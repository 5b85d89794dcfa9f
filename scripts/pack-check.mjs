// Proves the published packages install and work outside the workspace (issue 12, acceptance
// check 2). Needs `pnpm turbo run build` first. Steps, each printed as `ok`/`FAIL`:
//
//   1. `pnpm pack` every published package under packages/* and apps/* (found by globbing,
//      private ones skipped) and look inside each tarball: LICENSE, README and dist present;
//      no tests, no build logs, no `workspace:` ranges; apps hold dist only.
//   2. every bare import in the built JavaScript is a dependency the package declares (so an
//      app never reaches for a devDependency that npm users will not have).
//   3. a fresh npm project in os.tmpdir() installs the tarballs with npm (the @stowage scope is
//      pointed at a dead registry, so nothing can come from anywhere but the tarballs), plus
//      TypeScript 5.9 and the newest TypeScript once, side by side, and @types/node.
//   4. a consumer that calls something real from each package, written once as ESM
//      (consumer.mts, `import`) and once as CommonJS (consumer.cts, `require`), typechecks
//      with both TypeScript versions without extra flags (no `types: ["node"]`), then runs
//      under node both ways; the apps' bins print their version.
//   5. `npm i -g --prefix <tmp>` of the CLI tarball with only the tarballs it depends on, then
//      `<tmp>/bin/stowage --version`; the same for the server app and `stowage-server`.
//
// Exits non-zero when any step fails. Everything lives in one temp directory, removed at the
// end unless PACK_CHECK_KEEP=1. Nothing is cached in the repository.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'stowage-pack-check-'));
const tarballs = join(work, 'tarballs');
const consumer = join(work, 'consumer');
const globalPrefix = join(work, 'global');
mkdirSync(tarballs);
mkdirSync(consumer);

// The newest TypeScript, and the oldest we promise (the workspace's own).
const TYPESCRIPT_OLDEST = '~5.9.3';
const TYPESCRIPT_NEWEST = 'latest';
// npm flags for every install: the @stowage scope resolves nowhere but the tarballs.
const NPM_FLAGS = [
  '--no-audit',
  '--no-fund',
  '--loglevel=error',
  '--fetch-retries=0',
  '--@stowage:registry=http://127.0.0.1:9/',
];

let failures = 0;

/** Runs a command; returns its result without throwing. */
function run(command, args, options = {}) {
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    ...options,
    env: { ...process.env, npm_config_update_notifier: 'false', ...options.env },
  });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`;
  return { status: result.status ?? 1, stdout: result.stdout ?? '', output };
}

/** One named step: `fn` returns a short detail or throws; the outcome is printed either way. */
function step(name, fn) {
  try {
    const detail = fn();
    console.log(`ok   ${name}${detail ? `: ${detail}` : ''}`);
    return true;
  } catch (error) {
    failures++;
    console.log(`FAIL ${name}: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  }
}

function must(result, what) {
  if (result.status !== 0) throw new Error(`${what} exited ${result.status}\n${result.output.trim()}`);
  return result;
}

// ---- discover -------------------------------------------------------------------------------

const packages = [];
for (const group of ['packages', 'apps']) {
  for (const name of readdirSync(join(repo, group)).sort()) {
    const dir = join(repo, group, name);
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    if (manifest.private) continue;
    packages.push({ dir, rel: `${group}/${name}`, app: group === 'apps', manifest, tarball: '' });
  }
}
const byName = new Map(packages.map((pkg) => [pkg.manifest.name, pkg]));
console.log(`pack-check: ${packages.length} published packages, working in ${work}`);

// ---- 1. pack and inspect --------------------------------------------------------------------

// one `pnpm -r pack` for all of them (pnpm starts once), then a look inside each tarball
const packedInfo = new Map();
step('pnpm pack every published package', () => {
  const missing = packages.filter((pkg) => !existsSync(join(pkg.dir, 'dist')));
  if (missing.length) {
    throw new Error(`no dist in ${missing.map((pkg) => pkg.rel).join(', ')}: run pnpm turbo run build`);
  }
  const filters = packages.flatMap((pkg) => ['--filter', `./${pkg.rel}`]);
  const packed = must(
    run('pnpm', ['-r', ...filters, 'pack', '--json', '--pack-destination', tarballs], { cwd: repo }),
    'pnpm pack',
  );
  const list = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[')));
  for (const info of list) packedInfo.set(info.name, info);
  return `${list.length} tarballs`;
});
for (const pkg of packages) {
  step(`tarball of ${pkg.manifest.name}`, () => {
    const info = packedInfo.get(pkg.manifest.name);
    if (!info) throw new Error('not packed');
    pkg.tarball = info.filename.startsWith('/') ? info.filename : join(tarballs, info.filename);
    // what is in the tarball itself, not what pnpm says it put there
    const files = must(run('tar', ['-tzf', pkg.tarball]), 'tar -t')
      .stdout.split('\n')
      .filter(Boolean)
      .map((entry) => entry.replace(/^package\//, ''));
    const problems = [];
    for (const needed of ['package.json', 'LICENSE', 'README.md']) {
      if (!files.includes(needed)) problems.push(`no ${needed}`);
    }
    if (!files.some((file) => file.startsWith('dist/'))) problems.push('no dist/');
    for (const file of files) {
      if (/\.test\.[cm]?[jt]s$/.test(file) || /(^|\/)(test|tests|__tests__|fixtures)\//.test(file)) {
        problems.push(`ships a test file: ${file}`);
      }
      if (/(^|\/)\.turbo\//.test(file) || file.endsWith('.log') || file.endsWith('.tsbuildinfo')) {
        problems.push(`ships a build artefact: ${file}`);
      }
      if (pkg.app && !['package.json', 'LICENSE', 'README.md'].includes(file) && !file.startsWith('dist/')) {
        problems.push(`an app ships more than dist, README and LICENSE: ${file}`);
      }
    }
    const packedManifest = JSON.parse(
      must(run('tar', ['-xzOf', pkg.tarball, 'package/package.json']), 'tar -x').stdout,
    );
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
      for (const [dep, range] of Object.entries(packedManifest[field] ?? {})) {
        if (String(range).startsWith('workspace:')) problems.push(`${field}.${dep} is still ${range}`);
      }
    }
    if (problems.length) throw new Error(problems.join('; '));
    return `${files.length} files`;
  });
}

// ---- 2. what the built code imports is declared ---------------------------------------------

const builtins = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));
/** The bare specifiers (package names) a built file imports or requires. */
function bareImports(code) {
  const found = new Set();
  // esbuild writes each static import or re-export on one line of its own
  const patterns = [
    /^(?:import|export)\s[^'"]*?\sfrom\s*['"]([^'"]+)['"];?\s*$/gm,
    /^import\s*['"]([^'"]+)['"];?\s*$/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of code.matchAll(pattern)) {
      const specifier = match[1];
      if (specifier.startsWith('.') || specifier.startsWith('/') || builtins.has(specifier)) continue;
      if (specifier.startsWith('node:')) continue;
      const parts = specifier.split('/');
      found.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
    }
  }
  return found;
}
for (const pkg of packages) {
  step(`imports of ${pkg.manifest.name} are declared`, () => {
    const declared = new Set(
      ['dependencies', 'peerDependencies', 'optionalDependencies'].flatMap((field) =>
        Object.keys(pkg.manifest[field] ?? {}),
      ),
    );
    const dist = join(pkg.dir, 'dist');
    const undeclared = new Set();
    for (const file of readdirSync(dist, { recursive: true })) {
      if (typeof file !== 'string' || !/\.[cm]?js$/.test(file)) continue;
      for (const name of bareImports(readFileSync(join(dist, file), 'utf8'))) {
        if (!declared.has(name)) undeclared.add(`${name} (dist/${file})`);
      }
    }
    if (undeclared.size) throw new Error(`not in dependencies: ${[...undeclared].join(', ')}`);
    return '';
  });
}

// ---- 3. a fresh project outside the workspace -----------------------------------------------

const libraries = packages.filter((pkg) => !pkg.app && pkg.tarball);
const apps = packages.filter((pkg) => pkg.app && pkg.tarball);
const installed = step('npm install the tarballs, typescript 5.9 and latest, @types/node', () => {
  if (packages.some((pkg) => !pkg.tarball)) throw new Error('a package did not pack');
  const dependencies = Object.fromEntries(packages.map((pkg) => [pkg.manifest.name, `file:${pkg.tarball}`]));
  writeFileSync(
    join(consumer, 'package.json'),
    `${JSON.stringify(
      {
        name: 'stowage-pack-check-consumer',
        private: true,
        dependencies,
        devDependencies: {
          '@types/node': '^20.19.0',
          'typescript-oldest': `npm:typescript@${TYPESCRIPT_OLDEST}`,
          'typescript-newest': `npm:typescript@${TYPESCRIPT_NEWEST}`,
        },
      },
      null,
      2,
    )}\n`,
  );
  must(run('npm', ['install', ...NPM_FLAGS], { cwd: consumer }), 'npm install');
  // every @stowage package is the one from its tarball, installed once
  const nested = run('find', [
    join(consumer, 'node_modules'),
    '-path',
    '*/node_modules/*/node_modules/@stowage/*',
    '-prune',
  ]);
  if (nested.stdout.trim()) throw new Error(`nested @stowage copies:\n${nested.stdout.trim()}`);
  const versions = ['typescript-oldest', 'typescript-newest'].map(
    (alias) =>
      JSON.parse(readFileSync(join(consumer, 'node_modules', alias, 'package.json'), 'utf8')).version,
  );
  return `typescript ${versions.join(' and ')}`;
});

// ---- 4. the consumer ------------------------------------------------------------------------

/** What the consumer does with each library: code over the namespace `ns`, which must throw on failure. */
const uses = {
  '@stowage/oci': `const digest = ns.parseDigest(\`sha256:\${'a'.repeat(64)}\`);
    check(ns.isDigest(digest) && !ns.isDigest('sha256:nope'), 'parseDigest, isDigest');`,
  '@stowage/tags': `const slug = ns.slug('Hello, World', 40);
    check(typeof slug === 'string' && slug.length > 0, \`slug -> \${slug}\`);`,
  '@stowage/registry-client': `const redacted = ns.redactUrl('https://user:secret@registry.example/v2/');
    check(!redacted.includes('secret'), \`redactUrl -> \${redacted}\`);
    check(ns.parseWwwAuthenticate('Bearer realm="https://auth.example/token"').length === 1, 'parseWwwAuthenticate');`,
  '@stowage/image-store': `const name = ns.parseImageName('library/alpine:3');
    check(name.repository === 'library/alpine' && name.tag === '3', 'parseImageName');`,
  '@stowage/metadata-db': `check(!ns.redactDatabaseUrl('postgres://me:secret@db/registry').includes('secret'), 'redactDatabaseUrl');
    check(ns.migrations.length > 0, \`\${ns.migrations.length} migrations\`);`,
  '@stowage/importer': `const link = ns.parseLink(\`sha256:\${'b'.repeat(64)}\`);
    check(link.ok && link.digest.startsWith('sha256:'), 'parseLink');`,
  '@stowage/registry-server': `const route = ns.parseRoute('/v2/');
    check(route?.kind === 'ping', 'parseRoute');`,
  '@stowage/blob-store': `const store = ns.createMemoryBlobStore();
    check(typeof store.stat === 'function', 'createMemoryBlobStore');
    check(ns.BLOB_WRITE_CHANNEL.startsWith('stowage:blob-store:'), ns.BLOB_WRITE_CHANNEL);`,
  '@stowage/stages-storage': `check(ns.repositoryOfAddress('registry.example.com/group/project') === 'group/project', 'repositoryOfAddress');
    check(ns.RECORD_LAYER_DIFF_ID === 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef', 'RECORD_LAYER_DIFF_ID');`,
  '@stowage/storage-manager': `const lock = ns.hostLockPath('/home', 'image.x');
    check(lock.startsWith('/home/service/locks/'), \`hostLockPath -> \${lock}\`);
    check(typeof ns.createStorageManager === 'function', 'createStorageManager');`,
  '@stowage/sync': `check(ns.configError('registries[0].urls', 'expected a list').details.key === 'registries[0].urls', 'configError');
    check(typeof ns.runSyncPass === 'function' && typeof ns.createPullThroughRegistry === 'function', 'runSyncPass');`,
  '@stowage/copy': `check(typeof ns.copyImage === 'function', 'copyImage');
    check(ns.COPY_BLOB_CHANNEL.startsWith('stowage:copy:'), ns.COPY_BLOB_CHANNEL);`,
};

const CHECK = [
  'function check(ok: boolean, what: string): void {',
  "  if (!ok) throw new Error('check failed: ' + what);",
  '}',
].join('\n');

function useOf(pkg) {
  // a package this script does not know yet: it loads and exports something
  return uses[pkg.manifest.name] ?? `check(Object.keys(ns).length > 0, 'has exports');`;
}

function consumerSource(style) {
  const lines = [
    `// Written by scripts/pack-check.mjs: uses each installed @stowage package through ${style === 'esm' ? 'import' : 'require'}.`,
  ];
  libraries.forEach((pkg, i) => {
    lines.push(
      style === 'esm'
        ? `import * as pkg${i} from '${pkg.manifest.name}';`
        : `import pkg${i} = require('${pkg.manifest.name}');`,
    );
  });
  lines.push('', CHECK, 'const used: string[] = [];');
  libraries.forEach((pkg, i) => {
    lines.push(`{`, `  const ns = pkg${i};`, `  ${useOf(pkg)}`, `  used.push('${pkg.manifest.name}');`, `}`);
  });
  lines.push(`process.stdout.write(\`${style}: \${used.join(' ')}\\n\`);`, '');
  return lines.join('\n');
}

if (installed) {
  writeFileSync(join(consumer, 'consumer.mts'), consumerSource('esm'));
  writeFileSync(join(consumer, 'consumer.cts'), consumerSource('cjs'));
  // What a consumer writes: strict, NodeNext, and no `types` entry (TypeScript 6+ includes no
  // @types package by default, so the packages' own declarations must pull in node's types).
  // skipLibCheck stays off so the packages' .d.ts files are checked too.
  const compilerOptions = {
    target: 'es2022',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    strict: true,
    skipLibCheck: false,
    outDir: 'out',
  };
  writeFileSync(
    join(consumer, 'tsconfig.json'),
    `${JSON.stringify({ compilerOptions, files: ['consumer.mts', 'consumer.cts'] }, null, 2)}\n`,
  );
  const tsc = (alias) => join(consumer, 'node_modules', alias, 'bin', 'tsc');
  const compiled = step('typecheck the consumer with TypeScript 5.9 (and emit it)', () => {
    must(
      run(process.execPath, [tsc('typescript-oldest'), '-p', 'tsconfig.json'], { cwd: consumer }),
      'tsc 5.9',
    );
    return must(
      run(process.execPath, [tsc('typescript-oldest'), '--version']),
      'tsc --version',
    ).stdout.trim();
  });
  step('typecheck the consumer with the newest TypeScript', () => {
    must(
      run(process.execPath, [tsc('typescript-newest'), '-p', 'tsconfig.json', '--noEmit'], { cwd: consumer }),
      'tsc latest',
    );
    return must(
      run(process.execPath, [tsc('typescript-newest'), '--version']),
      'tsc --version',
    ).stdout.trim();
  });
  // One program per package with the newest TypeScript: the consumer above imports them all,
  // and one package's types pulling in node's (undici's do) would hide another's that need
  // them and do not say so.
  mkdirSync(join(consumer, 'alone'));
  for (const [i, pkg] of libraries.entries()) {
    step(`typecheck ${pkg.manifest.name} alone with the newest TypeScript`, () => {
      const dir = join(consumer, 'alone', String(i));
      mkdirSync(dir);
      writeFileSync(
        join(dir, 'use.mts'),
        [`import * as ns from '${pkg.manifest.name}';`, CHECK, useOf(pkg), ''].join('\n'),
      );
      const { outDir: _, ...options } = compilerOptions;
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({ compilerOptions: { ...options, noEmit: true }, files: ['use.mts'] }),
      );
      must(run(process.execPath, [tsc('typescript-newest'), '-p', dir]), 'tsc latest');
      return '';
    });
  }
  if (compiled) {
    step('run the consumer as ESM (import)', () =>
      must(
        run(process.execPath, ['out/consumer.mjs'], { cwd: consumer }),
        'node out/consumer.mjs',
      ).stdout.trim(),
    );
    step('run the consumer as CommonJS (require)', () =>
      must(
        run(process.execPath, ['out/consumer.cjs'], { cwd: consumer }),
        'node out/consumer.cjs',
      ).stdout.trim(),
    );
  }
  for (const pkg of apps) {
    for (const [bin] of Object.entries(pkg.manifest.bin ?? {})) {
      step(`${bin} --version (${pkg.manifest.name} from the project)`, () => {
        const out = must(run(join(consumer, 'node_modules', '.bin', bin), ['--version']), `${bin} --version`);
        if (!out.stdout.includes(pkg.manifest.version)) throw new Error(`printed ${out.stdout.trim()}`);
        return out.stdout.trim();
      });
    }
  }
}

// ---- 5. npm i -g of the CLI and only what it depends on -------------------------------------

/** The tarballs of `name` and every @stowage package it depends on, transitively. */
function closure(name, into = new Map()) {
  const pkg = byName.get(name);
  if (!pkg) throw new Error(`${name} is not a published package of this workspace`);
  if (into.has(name)) return into;
  into.set(name, pkg.tarball);
  for (const dep of Object.keys(pkg.manifest.dependencies ?? {})) {
    if (dep.startsWith('@stowage/')) closure(dep, into);
  }
  return into;
}
// The CLI is what the acceptance check names; the server app gets the same treatment.
const globalApps = [
  '@stowage/cli',
  ...apps.map((pkg) => pkg.manifest.name).filter((n) => n !== '@stowage/cli'),
];
for (const name of globalApps) {
  const app = byName.get(name);
  const bins = Object.keys(app?.manifest.bin ?? {});
  step(`npm i -g ${name} with only its dependencies, then ${bins.join(', ') || 'its bin'} --version`, () => {
    if (!app?.tarball) throw new Error(`${name} did not pack`);
    if (bins.length === 0) throw new Error(`${name} has no bin`);
    const set = closure(name);
    const prefix = join(globalPrefix, name.replace('/', '__'));
    must(
      run('npm', ['install', '--global', '--prefix', prefix, ...NPM_FLAGS, ...set.values()], { cwd: work }),
      'npm i -g',
    );
    const printed = bins.map((bin) => {
      const out = must(run(join(prefix, 'bin', bin), ['--version'], { cwd: work }), `${bin} --version`);
      if (out.stdout.trim() !== `${bin} ${app.manifest.version}`)
        throw new Error(`${bin} printed ${out.stdout.trim()}`);
      return out.stdout.trim();
    });
    return `${printed.join(', ')} (installed ${[...set.keys()].join(', ')})`;
  });
}

if (process.env.PACK_CHECK_KEEP === '1') console.log(`kept ${work}`);
else rmSync(work, { recursive: true, force: true });
if (failures) {
  console.log(`pack-check: ${failures} step(s) failed`);
  process.exit(1);
}
console.log('pack-check: every step passed');
