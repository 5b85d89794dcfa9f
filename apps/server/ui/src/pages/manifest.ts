// `#/r/<repository>/m/<tag or digest>`: one manifest. An index lists its platforms, each linking to
// its manifest by digest; an image shows its config summary, layers and annotations. Both show
// their referrers (signatures, SBOMs), pull commands, and delete buttons when the session may delete.
import {
  type Descriptor,
  deleteManifest,
  fetchImageConfig,
  fetchManifest,
  fetchReferrers,
  type ImageConfig,
  isDigest,
  isImageConfig,
  isIndex,
  type ManifestResponse,
} from '../api.js';
import { append, type Child, h, replace } from '../dom.js';
import { isApiError, messageOf } from '../errors.js';
import { formatAge, formatBytes, platformLabel, shortDigest } from '../format.js';
import { learnTag } from '../known.js';
import { forgetTagListing } from '../listing.js';
import { manifestHref, repositoriesHref, tagsHref } from '../routes.js';
import { accessTo } from '../session.js';
import {
  confirmDelete,
  copyable,
  definitions,
  errorMessage,
  type PageContext,
  pageHeading,
  section,
  statusLine,
  table,
} from '../widgets.js';
import { offerLogin } from './login.js';

export function renderManifest(context: PageContext, repository: string, reference: string): void {
  const byDigest = isDigest(reference);
  const name = byDigest ? `${repository}@${shortDigest(reference)}` : `${repository}:${reference}`;
  document.title = `${name} · Stowage`;
  const content = h('div', null, statusLine());
  replace(
    context.main,
    h(
      'nav',
      { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: repositoriesHref() }, 'Repositories'),
      ' / ',
      h('a', { href: tagsHref(repository) }, repository),
      ' /',
    ),
    pageHeading(name),
    content,
  );
  const status = content.firstChild as HTMLElement;
  status.textContent = 'Loading…';
  fetchManifest(repository, { reference, signal: context.signal }).then(
    (response) => {
      if (context.signal.aborted) return;
      replace(content, manifestView(context, { repository, reference, response }));
    },
    (error: unknown) => {
      if (context.signal.aborted) return;
      if (!offerLogin(context, error, content)) replace(content, errorMessage(messageOf(error)));
    },
  );
}

interface Shown {
  readonly repository: string;
  readonly reference: string;
  readonly response: ManifestResponse;
}

function manifestView(context: PageContext, shown: Shown): Child[] {
  const { repository, reference, response } = shown;
  const { manifest, digest } = response;
  const index = isIndex(response);
  const layers = manifest.layers ?? [];
  const imageSize = index
    ? undefined
    : layers.reduce((sum, layer) => sum + (layer.size ?? 0), manifest.config?.size ?? 0);
  if (!isDigest(reference)) learnTag(repository, reference, { digest, size: imageSize });

  const summary = definitions(
    [
      ['Media type', h('code', { testid: 'manifest-media-type' }, response.mediaType || 'unknown')],
      [
        'Digest',
        digest
          ? copyable(digest, { testid: 'manifest-digest', label: 'digest' })
          : 'unknown (the server sent no Docker-Content-Digest, and this page cannot hash over plain HTTP)',
      ],
      ['Artifact type', manifest.artifactType && h('code', null, manifest.artifactType)],
      ['Manifest size', formatBytes(response.size)],
      [
        'Image size',
        imageSize === undefined ? undefined : `${formatBytes(imageSize)} (config and layers, compressed)`,
      ],
      [
        'Subject',
        manifest.subject &&
          h(
            'a',
            { href: manifestHref(repository, manifest.subject.digest), testid: 'subject-link' },
            manifest.subject.digest,
          ),
      ],
    ],
    'manifest-summary',
  );

  return [
    summary,
    pullCommands(repository, reference),
    index ? platforms(repository, manifest.manifests ?? []) : imageSections(context, shown),
    annotations('Annotations', 'annotations', manifest.annotations),
    digest ? referrers(context, repository, digest) : null,
    deleteSection(context, { repository, reference, digest, index }),
    h(
      'details',
      { class: 'raw' },
      h('summary', null, 'Manifest JSON'),
      h('pre', { testid: 'manifest-json' }, prettyJson(response.text)),
    ),
  ];
}

function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** podman, docker and skopeo, for this host; podman and skopeo told about plain HTTP when it is. */
function pullCommands(repository: string, reference: string): HTMLElement {
  const image = `${location.host}/${repository}${isDigest(reference) ? '@' : ':'}${reference}`;
  const insecure = location.protocol === 'http:' ? ' --tls-verify=false' : '';
  return section(
    'Pull',
    'pull',
    copyable(`podman pull${insecure} ${image}`, { testid: 'command-podman', label: 'podman command' }),
    copyable(`docker pull ${image}`, { testid: 'command-docker', label: 'docker command' }),
    copyable(`skopeo inspect${insecure} docker://${image}`, {
      testid: 'command-skopeo',
      label: 'skopeo command',
    }),
  );
}

function digestCell(digest: string): HTMLElement {
  return h('td', null, h('code', { title: digest }, shortDigest(digest)));
}

function platforms(repository: string, children: readonly Descriptor[]): HTMLElement {
  if (children.length === 0)
    return section('Platforms', 'platforms', h('p', null, 'This index lists no manifests.'));
  const list = table({
    testid: 'platform-table',
    head: ['Platform', 'Media type', 'Size', 'Digest'],
    rows: children.map((child) =>
      h(
        'tr',
        { testid: 'platform-row' },
        h(
          'td',
          null,
          h(
            'a',
            {
              href: manifestHref(repository, child.digest),
              testid: 'platform-link',
              'data-digest': child.digest,
            },
            platformLabel(child),
          ),
        ),
        h('td', null, h('code', null, child.mediaType ?? '—')),
        h('td', { class: 'number' }, formatBytes(child.size)),
        digestCell(child.digest),
      ),
    ),
  });
  return section('Platforms', 'platforms', list.element);
}

function imageSections(context: PageContext, shown: Shown): Child[] {
  const { repository, reference, response } = shown;
  const { config, layers = [] } = response.manifest;
  const summary = section('Configuration', 'config-summary');
  if (config && isImageConfig(config)) {
    const status = statusLine();
    status.textContent = 'Loading the image config…';
    summary.appendChild(status);
    fetchImageConfig(repository, { descriptor: config, signal: context.signal }).then(
      (image) => {
        if (context.signal.aborted) return;
        if (!image) {
          status.textContent = `The config is ${formatBytes(config.size)}: too large to show here.`;
          return;
        }
        if (!isDigest(reference) && image.created)
          learnTag(repository, reference, { created: image.created });
        status.remove();
        append(summary, configSummary(image));
      },
      (error: unknown) => {
        if (!context.signal.aborted) replace(status, errorMessage(`The image config: ${messageOf(error)}`));
      },
    );
  } else {
    summary.appendChild(
      h(
        'p',
        null,
        'Not an image config: ',
        h('code', null, config?.mediaType ?? 'none'),
        config ? ` (${formatBytes(config.size)})` : '',
      ),
    );
  }

  const titled = layers.some((layer) => layer.annotations?.['org.opencontainers.image.title']);
  const total = layers.reduce((sum, layer) => sum + (layer.size ?? 0), 0);
  const list = table({
    testid: 'layer-table',
    caption: `${layers.length} ${layers.length === 1 ? 'layer' : 'layers'}, ${formatBytes(total)}`,
    head: ['#', ...(titled ? ['Title'] : []), 'Media type', 'Size', 'Digest'],
    rows: layers.map((layer, i) =>
      h(
        'tr',
        { testid: 'layer-row' },
        h('td', { class: 'number' }, String(i + 1)),
        titled ? h('td', null, layer.annotations?.['org.opencontainers.image.title'] ?? '') : null,
        h('td', null, h('code', null, layer.mediaType ?? '—')),
        h('td', { class: 'number' }, formatBytes(layer.size)),
        digestCell(layer.digest),
      ),
    ),
  });
  return [summary, section('Layers', 'layers', list.element)];
}

function commandLine(argv: readonly string[] | null | undefined): Child | undefined {
  if (!argv || argv.length === 0) return undefined;
  return h('code', null, JSON.stringify(argv));
}

function configSummary(image: ImageConfig): Child[] {
  const settings = image.config ?? {};
  const created = image.created;
  const age = formatAge(created);
  const platform = [image.os, image.architecture, image.variant].filter(Boolean).join('/');
  const ports = Object.keys(settings.ExposedPorts ?? {});
  const env = settings.Env ?? [];
  return [
    definitions(
      [
        [
          'Created',
          created
            ? h('time', { datetime: created, title: created }, age ? `${age} (${created})` : created)
            : undefined,
        ],
        ['Platform', platform || undefined],
        ['Author', image.author || undefined],
        ['Entrypoint', commandLine(settings.Entrypoint)],
        ['Cmd', commandLine(settings.Cmd)],
        ['Working directory', settings.WorkingDir ? h('code', null, settings.WorkingDir) : undefined],
        ['User', settings.User ? h('code', null, settings.User) : undefined],
        ['Exposed ports', ports.length ? ports.join(', ') : undefined],
        [
          'Environment',
          env.length
            ? h(
                'ul',
                { class: 'plain', testid: 'config-env' },
                env.map((line) => h('li', null, h('code', null, line))),
              )
            : undefined,
        ],
      ],
      'config-details',
    ),
    annotations('Labels', 'labels', settings.Labels ?? undefined),
  ];
}

/** Annotations or labels as a key/value table; nothing when there are none. */
function annotations(
  title: string,
  testid: string,
  values: Record<string, string> | undefined,
): HTMLElement | null {
  const entries = Object.entries(values ?? {});
  if (entries.length === 0) return null;
  const list = table({
    testid: `${testid}-table`,
    head: ['Key', 'Value'],
    rows: entries.map(([key, value]) =>
      h('tr', null, h('td', null, h('code', null, key)), h('td', { class: 'wrap' }, String(value))),
    ),
  });
  return section(title, testid, list.element);
}

function referrers(context: PageContext, repository: string, digest: string): HTMLElement {
  const status = statusLine();
  status.textContent = 'Loading…';
  const part = section('Referrers', 'referrers', status);
  fetchReferrers(repository, { digest, signal: context.signal }).then(
    (found) => {
      if (context.signal.aborted) return;
      if (found.length === 0) {
        status.textContent = 'No signatures, SBOMs or other artifacts refer to this manifest.';
        return;
      }
      status.remove();
      const list = table({
        testid: 'referrer-table',
        head: ['Artifact type', 'Created', 'Size', 'Digest'],
        rows: found.map((referrer) => {
          const created = referrer.annotations?.['org.opencontainers.image.created'];
          return h(
            'tr',
            { testid: 'referrer-row' },
            h(
              'td',
              null,
              h(
                'a',
                { href: manifestHref(repository, referrer.digest), testid: 'referrer-link' },
                referrer.artifactType ?? referrer.mediaType ?? 'unknown',
              ),
            ),
            h('td', { title: created }, formatAge(created) ?? '—'),
            h('td', { class: 'number' }, formatBytes(referrer.size)),
            digestCell(referrer.digest),
          );
        }),
      });
      part.appendChild(list.element);
    },
    (error: unknown) => {
      if (context.signal.aborted) return;
      status.textContent =
        isApiError(error) && error.status === 404
          ? 'This registry does not list referrers.'
          : `Referrers: ${messageOf(error)}`;
    },
  );
  return part;
}

function deleteSection(
  context: PageContext,
  shown: {
    readonly repository: string;
    readonly reference: string;
    readonly digest: string | undefined;
    readonly index: boolean;
  },
): HTMLElement {
  const { repository, reference, digest } = shown;
  const part = section('Delete', 'delete');
  part.hidden = true;
  const status = statusLine('action-status');

  const run = async (what: { readonly target: string; readonly title: string; readonly detail: string }) => {
    if (!(await confirmDelete(what)) || context.signal.aborted) return;
    status.textContent = 'Deleting…';
    try {
      await deleteManifest(repository, { reference: what.target, signal: context.signal });
      forgetTagListing(repository);
      location.hash = tagsHref(repository);
    } catch (error) {
      if (!context.signal.aborted) replace(status, errorMessage(`Could not delete: ${messageOf(error)}`));
    }
  };
  const buttons: HTMLButtonElement[] = [];
  if (!isDigest(reference)) {
    buttons.push(
      h(
        'button',
        {
          type: 'button',
          class: 'danger',
          testid: 'delete-tag',
          'data-tag': reference,
          onclick: () =>
            void run({
              target: reference,
              title: `Delete tag ${reference}?`,
              detail: `The tag ${repository}:${reference} goes; the manifest stays, reachable by its digest and any other tag.`,
            }),
        },
        `Delete tag ${reference}`,
      ),
    );
  }
  if (digest) {
    buttons.push(
      h(
        'button',
        {
          type: 'button',
          class: 'danger',
          testid: 'delete-manifest',
          'data-digest': digest,
          onclick: () =>
            void run({
              target: digest,
              title: `Delete manifest ${shortDigest(digest)}?`,
              detail: `The manifest ${digest} goes from ${repository}, and every tag on it${
                shown.index ? ' (the platform manifests it lists stay, untagged)' : ''
              }. Whoever pulls it by tag or digest gets "manifest unknown".`,
            }),
        },
        'Delete manifest',
      ),
    );
  }
  part.append(h('div', { class: 'buttons' }, buttons), status);
  void accessTo(repository).then((actions) => {
    if (!context.signal.aborted && actions.has('delete') && buttons.length > 0) part.hidden = false;
  });
  return part;
}
