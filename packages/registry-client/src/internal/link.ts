/**
 * The target of the `rel="next"` link of an RFC 8288 `Link` header, as the
 * distribution API pages listings: `</v2/_catalog?last=x&n=100>; rel="next"`.
 */
export function nextLink(header: string | readonly string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const values = typeof header === 'string' ? [header] : header;
  for (const value of values) {
    const pattern = /<([^>]*)>((?:\s*;\s*[^;,<]+)*)/g;
    for (let match = pattern.exec(value); match !== null; match = pattern.exec(value)) {
      const params = match[2] ?? '';
      const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params);
      const relations = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
      if (relations.includes('next')) return match[1];
    }
  }
  return undefined;
}
