/**
 * Query parameters that carry secrets: bearer tokens, OAuth2 grants and the
 * signatures of pre-signed storage URLs (S3, GCS, Azure, CloudFront) that
 * registries redirect blob downloads to.
 */
const sensitiveParams: ReadonlySet<string> = new Set([
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'password',
  'passwd',
  'secret',
  'client_secret',
  'code',
  'key',
  'apikey',
  'api_key',
  'signature',
  'sig',
  'x-amz-signature',
  'x-amz-credential',
  'x-amz-security-token',
  'x-goog-signature',
  'x-goog-credential',
  'policy',
  'key-pair-id',
  'se',
  'sp',
  'sv',
  'skoid',
  'sktid',
]);

/** True for a query parameter name whose value must never be shown. */
export function isSensitiveParam(name: string): boolean {
  return sensitiveParams.has(name.toLowerCase());
}

/**
 * A URL safe to put in an error or a log line: userinfo removed and the values
 * of secret-bearing query parameters replaced. Anything that does not parse as
 * a URL is reduced to what comes before its query.
 */
export function redactUrl(input: string | URL): string {
  let url: URL | undefined;
  try {
    url = new URL(String(input));
  } catch {
    url = undefined;
  }
  // Not a URL, or an opaque one ("user:pw@host" parses with scheme "user:"): keep the path only.
  if (url === undefined || url.host === '') {
    const text = String(input);
    const at = text.indexOf('?');
    const bare = at < 0 ? text : `${text.slice(0, at)}?…`;
    // A relative path cannot hold userinfo, but a scheme-less "user:pass@host" can.
    return bare.replace(/^[^/@?#]*@/, '');
  }
  url.username = '';
  url.password = '';
  const params = [...url.searchParams.keys()];
  if (params.some(isSensitiveParam)) {
    const next = new URLSearchParams();
    for (const [name, value] of url.searchParams)
      next.append(name, isSensitiveParam(name) ? 'REDACTED' : value);
    url.search = next.toString();
  }
  return url.toString();
}
