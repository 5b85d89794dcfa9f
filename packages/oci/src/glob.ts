/**
 * Repository globs, shared by registry-server's access rules and sync's
 * content rules: `*` matches within one path segment, and `**` as a whole
 * segment any number of segments, zero included: `public/**` is everything
 * under `public/` and `public` itself, and a leading `**` segment followed by
 * `b` matches `b` and `x/y/b`. A `**` inside a segment (`a**`) is the same as
 * `*`. Every other character is literal.
 */

const compiled = new Map<string, RegExp>();

function escapeRegExp(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/** The anchored regular expression of a repository glob (compiled once per pattern). */
export function globToRegExp(pattern: string): RegExp {
  let cached = compiled.get(pattern);
  if (cached) return cached;
  let source = '';
  const parts = pattern.split('/');
  for (const [i, part] of parts.entries()) {
    const last = i === parts.length - 1;
    if (part === '**') {
      // `a/**` also matches `a`; `**/b` matches `b` and `x/y/b`
      source += last ? (i === 0 ? '.*' : '(?:/.*)?') : i === 0 ? '(?:.*/)?' : '/(?:.*/)?';
      continue;
    }
    const segment = part.split('*').map(escapeRegExp).join('[^/]*');
    source += (i === 0 || parts[i - 1] === '**' ? '' : '/') + segment;
  }
  cached = new RegExp(`^${source}$`);
  compiled.set(pattern, cached);
  return cached;
}
