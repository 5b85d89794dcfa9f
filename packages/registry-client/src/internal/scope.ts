/**
 * Token scopes of the distribution token protocol:
 * `repository:<name>:<action>[,<action>…]`, `registry:catalog:*`.
 */
export interface Scope {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

/** The scope a pull needs. */
export function pullScope(repository: string): Scope {
  return { type: 'repository', name: repository, actions: ['pull'] };
}

/** The scope a push needs (registries want pull with it: a push checks what exists). */
export function pushScope(repository: string): Scope {
  return { type: 'repository', name: repository, actions: ['pull', 'push'] };
}

/** The scope a delete needs. */
export function deleteScope(repository: string): Scope {
  return { type: 'repository', name: repository, actions: ['delete'] };
}

export const catalogScope: Scope = { type: 'registry', name: 'catalog', actions: ['*'] };

/**
 * Parses one scope string. The name may itself hold colons (a repository on a
 * registry with a port), so the type is what precedes the first colon and the
 * actions what follows the last one. `undefined` for anything malformed.
 */
export function parseScope(input: string): Scope | undefined {
  const first = input.indexOf(':');
  const last = input.lastIndexOf(':');
  if (first <= 0 || last === first || last === input.length - 1) return undefined;
  const actions = input
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  const name = input.slice(first + 1, last);
  if (name === '' || actions.length === 0) return undefined;
  return { type: input.slice(0, first), name, actions: normalizeActions(actions) };
}

/** Parses the space-separated `scope` parameter of a challenge or token request. */
export function parseScopes(input: string | undefined): Scope[] {
  if (!input) return [];
  return input
    .split(/\s+/)
    .map(parseScope)
    .filter((s): s is Scope => s !== undefined);
}

export function formatScope(scope: Scope): string {
  return `${scope.type}:${scope.name}:${normalizeActions(scope.actions).join(',')}`;
}

function normalizeActions(actions: readonly string[]): string[] {
  return [...new Set(actions)].sort();
}

function resourceKey(scope: Scope): string {
  return `${scope.type}:${scope.name}`;
}

/**
 * A set of scopes merged by resource: adding `repository:a:push` to
 * `repository:a:pull` gives `repository:a:pull,push`. `*` grants every action.
 */
export class ScopeSet {
  readonly #resources = new Map<string, { type: string; name: string; actions: Set<string> }>();

  constructor(scopes: Iterable<Scope> = []) {
    for (const scope of scopes) this.add(scope);
  }

  get size(): number {
    return this.#resources.size;
  }

  add(scope: Scope): this {
    const key = resourceKey(scope);
    const entry = this.#resources.get(key) ?? {
      type: scope.type,
      name: scope.name,
      actions: new Set<string>(),
    };
    for (const action of scope.actions) entry.actions.add(action);
    this.#resources.set(key, entry);
    return this;
  }

  addAll(scopes: Iterable<Scope>): this {
    for (const scope of scopes) this.add(scope);
    return this;
  }

  /** True when every action of every given scope is held. */
  covers(scopes: Iterable<Scope>): boolean {
    for (const scope of scopes) {
      const entry = this.#resources.get(resourceKey(scope));
      if (entry === undefined) return false;
      if (entry.actions.has('*')) continue;
      if (!scope.actions.every((action) => entry.actions.has(action))) return false;
    }
    return true;
  }

  /** The union of this set and others, as a new set. */
  union(scopes: Iterable<Scope>): ScopeSet {
    return new ScopeSet(this.toScopes()).addAll(scopes);
  }

  toScopes(): Scope[] {
    return [...this.#resources.values()]
      .map((e) => ({ type: e.type, name: e.name, actions: normalizeActions([...e.actions]) }))
      .sort((a, b) => (resourceKey(a) < resourceKey(b) ? -1 : resourceKey(a) > resourceKey(b) ? 1 : 0));
  }

  /** The scope strings, sorted: the form sent to a token server. */
  toStrings(): string[] {
    return this.toScopes().map(formatScope);
  }

  /** A stable cache key for the set. */
  key(): string {
    return this.toStrings().join(' ');
  }

  /** Resource names of the given type, in insertion order. */
  names(type: string): string[] {
    return [...this.#resources.values()].filter((e) => e.type === type).map((e) => e.name);
  }
}
