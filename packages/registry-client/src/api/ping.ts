import { fullCapabilities, type OperationOptions, type RegistryCapabilities } from '@stowage/oci';
import { RegistryProtocolError } from '../errors.js';
import { signalOf } from '../internal/checks.js';
import type { ClientContext } from '../internal/context.js';

/** What `ping()` learnt about the registry. */
export interface PingResult {
  /** `host[:port]` of the registry API. */
  readonly registry: string;
  /** `Docker-Distribution-Api-Version`, when sent (`registry/2.0`). */
  readonly apiVersion?: string;
  /** The auth scheme the registry asked for: `none`, `basic` or `bearer`. */
  readonly auth: string;
}

/** `GET /v2/` with credentials: checks the registry answers and the credentials work. */
export async function ping(context: ClientContext, options: OperationOptions = {}): Promise<PingResult> {
  await context.sendForHeaders({
    method: 'GET',
    target: '/v2/',
    endpoint: 'ping',
    accept: [200],
    scopes: [],
    ...signalOf(options),
  });
  const host = context.registry;
  return {
    registry: context.options.registry,
    ...(host.apiVersion !== undefined ? { apiVersion: host.apiVersion } : {}),
    auth: host.auth.scheme,
  };
}

/**
 * What a registry that does not declare its capabilities is taken to do:
 * distribution 2.8 (docker-registry), as this client sees it.
 */
export const distributionCapabilities: RegistryCapabilities = Object.freeze({
  ...fullCapabilities,
  // 2.8 answers DELETE /manifests/<tag> with 400; no safe emulation exists.
  deleteTag: false,
  // 2.8 ignores ?mount= without from= and opens an upload session.
  anonymousMount: false,
  sparseIndex: false,
  // No referrers API; the client keeps and reads the referrers tag schema.
  referrers: 'tag-schema',
  lock: false,
  garbageCollect: false,
});

type BooleanCapability = Exclude<keyof RegistryCapabilities, 'referrers'>;

const booleanNames: ReadonlySet<string> = new Set(
  Object.keys(fullCapabilities).filter((name) => name !== 'referrers'),
);
const referrerModes: ReadonlySet<string> = new Set(['api', 'tag-schema', 'none']);
const entryPattern = /^([A-Za-z][A-Za-z0-9-]*)(?:=([A-Za-z0-9-]+))?$/;

/**
 * Parses a `Stowage-Capabilities` header: comma-separated names of the true
 * boolean capabilities and `referrers=<api|tag-schema|none>`. A name the
 * client does not know is ignored (a newer server may declare more); a
 * malformed entry, a value on a boolean name, an unknown referrers mode or a
 * repeated `referrers` is a `RegistryProtocolError`. Booleans not named are
 * false, and a missing `referrers` is `none`.
 */
export function parseCapabilitiesHeader(value: string): RegistryCapabilities {
  const declared: Record<string, boolean | string> = {};
  for (const name of booleanNames) declared[name] = false;
  let referrers: string | undefined;
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue; // HTTP lists may hold empty elements
    const match = entryPattern.exec(entry);
    if (match === null) throw malformed(value, `malformed entry ${JSON.stringify(entry.slice(0, 64))}`);
    const [, name = '', setting] = match;
    if (name === 'referrers') {
      if (setting === undefined || !referrerModes.has(setting) || referrers !== undefined)
        throw malformed(value, 'referrers must appear once, as referrers=api, tag-schema or none');
      referrers = setting;
    } else if (booleanNames.has(name)) {
      if (setting !== undefined) throw malformed(value, `${name} takes no value`);
      declared[name] = true;
    }
  }
  return {
    ...(declared as Record<BooleanCapability, boolean>),
    referrers: (referrers ?? 'none') as RegistryCapabilities['referrers'],
  };
}

function malformed(value: string, reason: string): RegistryProtocolError {
  return new RegistryProtocolError(`the registry sent an invalid Stowage-Capabilities header: ${reason}`, {
    header: value.slice(0, 256),
  });
}

/**
 * What this client can do against its registry: the registry's own
 * declaration (`Stowage-Capabilities` on `GET /v2/`, read by the first
 * request) or else the distribution 2.8 profile, adjusted for what the client
 * does itself (it always has upload sessions and refuses out-of-order chunks,
 * falls back to the referrers tag schema, and has neither
 * `lock` nor `garbageCollect`), then the `capabilities` option on top. Asked
 * once per client.
 */
export async function capabilities(
  context: ClientContext,
  options: OperationOptions = {},
): Promise<RegistryCapabilities> {
  if (context.capabilities !== undefined) return context.capabilities;
  await context.registry.ready(options.signal);
  const header = context.registry.capabilities;
  const declared = header === undefined ? distributionCapabilities : parseCapabilitiesHeader(header);
  context.capabilities ??= Object.freeze({
    ...declared,
    uploadSessions: true,
    outOfOrderChunkRefusal: true,
    referrers: declared.referrers === 'api' ? 'api' : 'tag-schema',
    lock: false,
    garbageCollect: false,
    ...context.options.capabilities,
  } satisfies RegistryCapabilities);
  return context.capabilities;
}
