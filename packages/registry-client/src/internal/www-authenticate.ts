/** One challenge of a `WWW-Authenticate` header (RFC 7235). */
export interface AuthChallenge {
  /** Lower-cased: `bearer`, `basic`… */
  readonly scheme: string;
  /** Auth parameters, names lower-cased, quoted values unescaped. */
  readonly params: Readonly<Record<string, string>>;
  /** A token68 credential-style value, when the challenge has one instead of parameters. */
  readonly token68?: string;
}

const tchar = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;
const token68Pattern = /^[A-Za-z0-9\-._~+/]+=*/;

/**
 * Parses every challenge of one or more `WWW-Authenticate` header values.
 * Tolerant: quoted strings may hold commas and escaped quotes, parameters may
 * be separated by several commas or none, unknown bytes are skipped. A
 * malformed header yields what could be understood, never an exception.
 */
export function parseWwwAuthenticate(header: string | readonly string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  if (typeof header !== 'string') return header.flatMap((value) => parseWwwAuthenticate(value));
  const input = header;
  const n = input.length;
  const out: { scheme: string; params: Record<string, string>; token68?: string }[] = [];
  let current: (typeof out)[number] | undefined;
  let i = 0;

  const skipSpaces = () => {
    while (i < n && (input[i] === ' ' || input[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && tchar.test(input[i] as string)) i++;
    return input.slice(start, i);
  };
  const readQuoted = (): string => {
    i++; // opening quote
    let value = '';
    while (i < n && input[i] !== '"') {
      if (input[i] === '\\' && i + 1 < n) i++;
      value += input[i];
      i++;
    }
    i++; // closing quote (or end of input)
    return value;
  };

  while (i < n) {
    skipSpaces();
    if (i >= n) break;
    if (input[i] === ',') {
      i++;
      continue;
    }
    const word = readToken();
    if (word === '') {
      i++; // a byte that starts nothing meaningful
      continue;
    }
    skipSpaces();
    if (input[i] === '=' && current !== undefined) {
      i++;
      skipSpaces();
      const value = input[i] === '"' ? readQuoted() : readToken();
      current.params[word.toLowerCase()] = value;
      continue;
    }
    // Anything else starts a new challenge.
    current = { scheme: word.toLowerCase(), params: {} };
    out.push(current);
    const rest = input.slice(i);
    const match = token68Pattern.exec(rest);
    if (match) {
      let j = i + match[0].length;
      while (j < n && (input[j] === ' ' || input[j] === '\t')) j++;
      if (j >= n || input[j] === ',') {
        current.token68 = match[0];
        i = j;
      }
    }
  }
  return out;
}

/** The challenge a client should answer: Bearer when offered, else Basic, else the first one. */
export function preferredChallenge(challenges: readonly AuthChallenge[]): AuthChallenge | undefined {
  return (
    challenges.find((c) => c.scheme === 'bearer') ??
    challenges.find((c) => c.scheme === 'basic') ??
    challenges[0]
  );
}
