import type { IncomingHttpHeaders } from 'node:http';

/** What a request needs: actions on one repository, or on the registry catalog. */
export interface Access {
  /** `repository` for `/v2/<name>/...`, `registry` with name `catalog` for `/v2/_catalog`. */
  readonly type: 'repository' | 'registry';
  readonly name: string;
  /** `pull`, `push`, `delete`, or `*` for the catalog. */
  readonly actions: readonly string[];
}

/** Who made a request, once authenticated. */
export interface Principal {
  /** The user name, or `undefined` for anonymous. */
  readonly subject?: string;
}

export type AuthDecision =
  | { readonly ok: true; readonly principal: Principal }
  | {
      readonly ok: false;
      /**
       * 401 when credentials are missing or wrong, 403 when they are right but
       * not enough, 429 when they cannot be checked now (too many in flight).
       */
      readonly status: 401 | 403 | 429;
      /** OCI error code: `UNAUTHORIZED`, `DENIED` or `TOOMANYREQUESTS`. */
      readonly code: 'UNAUTHORIZED' | 'DENIED' | 'TOOMANYREQUESTS';
      /**
       * Extra headers for the refusal, sent as given (they win over the
       * handler's own, a `Retry-After` included).
       */
      readonly headers?: Readonly<Record<string, string>>;
      /** For a 429: how long the client should wait; sent as `Retry-After` in whole seconds (at least 1; default 1). */
      readonly retryAfterMs?: number;
      readonly message: string;
      /** The `WWW-Authenticate` header value to send with a 401. */
      readonly challenge?: string;
    };

/** Decides whether a request may do what it needs. Implementations never throw for bad credentials. */
export interface Authorizer {
  authorize(
    request: { readonly headers: IncomingHttpHeaders },
    access: readonly Access[],
  ): Promise<AuthDecision>;
  /**
   * Which of `repositories` this request may pull, in their order: what
   * `/v2/_catalog` lists once `authorize` let the request see the catalog.
   * Optional: without it the handler asks `authorize` for `pull` on each
   * repository of the page it builds (once per repository and request). When
   * it cannot decide now it throws (a `RegistryError` `TOOMANYREQUESTS`, say),
   * and the catalog request fails with that error rather than leaving names out.
   */
  pullable?(
    request: { readonly headers: IncomingHttpHeaders },
    repositories: readonly string[],
  ): Promise<readonly string[]>;
}
