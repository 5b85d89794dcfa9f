/**
 * A database URL (or any text starting with one) with its password replaced
 * by `***`, fit for messages and logs: the password of the userinfo
 * (`postgres://user:***@host/db`) and `password`/`sslpassword` query
 * parameters. Everything else, such as `sslmode`, is kept.
 */
export function redactDatabaseUrl(text: string): string {
  return text
    .replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*):[^/?#]*@/i, '$1:***@')
    .replace(/([?&](?:ssl)?password=)[^&#\s]*/gi, '$1***');
}
