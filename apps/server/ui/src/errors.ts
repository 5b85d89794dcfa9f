// What a request to the server can fail with: an OCI error answer, or no answer at all.

/** `NETWORK` when no answer came; otherwise the OCI error code (`NAME_UNKNOWN`, `DENIED`, ...) or `HTTP_<status>`. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  /** The HTTP status, 0 when no answer came. */
  readonly status: number;
  readonly code: string;

  constructor(
    message: string,
    details: { readonly status: number; readonly code: string; readonly cause?: unknown },
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status;
    this.code = details.code;
  }

  /** A 401: the page needs a signed-in user. */
  get needsLogin(): boolean {
    return this.status === 401;
  }
}

export function isApiError(error: unknown, code?: string): error is ApiError {
  return error instanceof ApiError && (code === undefined || error.code === code);
}

/** The error of a refused answer, its message taken from the OCI error JSON `{errors: [{code, message}]}` when there is one. */
export async function errorOf(response: Response): Promise<ApiError> {
  let code = `HTTP_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body: unknown = await response.json();
    const errors = (body as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0) {
      const first = errors[0] as { code?: unknown };
      if (typeof first.code === 'string') code = first.code;
      const messages = errors
        .map((e: { code?: unknown; message?: unknown }) =>
          typeof e.message === 'string' && e.message !== ''
            ? e.message
            : typeof e.code === 'string'
              ? e.code
              : '',
        )
        .filter((text) => text !== '');
      if (messages.length > 0) message = messages.join('; ');
    }
  } catch {
    // not JSON (a proxy's error page, an empty HEAD answer): the status line says it
  }
  return new ApiError(message, { status: response.status, code });
}

/** The words to show for any error a page caught. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
