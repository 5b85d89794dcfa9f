import { byteLength, legacyMurmurHash } from './hash.js';
import { slugTable } from './internal/slug-table.js';

/** The legacy default length limit of werf slugs. */
export const DEFAULT_SLUG_MAX_SIZE = 42;
/** The longest Docker tag, in bytes. */
export const DOCKER_TAG_MAX_SIZE = 128;

const dockerTagPattern = /^\w[\w.-]*$/;

/**
 * Transliterates `data` with werf's table, one code point at a time: mapped
 * characters are replaced, unmapped ones dropped, and `-` is never doubled,
 * leading or trailing. No hash, no length limit.
 */
export function slugify(data: string): string {
  let out = '';
  for (const char of data) {
    const mapped = slugTable.get(char);
    if (mapped === undefined) continue;
    if (mapped === '-' && (out === '' || out.endsWith('-'))) continue;
    out += mapped;
  }
  return out.endsWith('-') ? out.slice(0, -1) : out;
}

function count(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** werf's decision whether `data` needs slugging, including the legacy double-hyphen rule. */
function shouldBeSlugged(data: string, max: number): boolean {
  if (data === '') return false;
  if (slugify(data) === data && byteLength(data) <= max) return false;
  if (byteLength(data) > max) return true;
  if (count(data, '--') !== 1) return true;
  const single = data.replace('--', '-');
  return single !== slugify(single);
}

/**
 * `slugify(data)` cropped to leave room for `-<murmur of the original data>`
 * within `max` bytes. A cropped part ending in `-` keeps it (werf's quirk), so
 * the result may contain `--`.
 */
export function slug(data: string, max: number): string {
  const slugged = slugify(data);
  const hash = legacyMurmurHash(data);
  if (slugged === '') return hash;
  const room = Math.max(0, max - hash.length - 1);
  return `${slugged.slice(0, room)}-${hash}`;
}

/** `data` unchanged when it is already an acceptable slug of at most `max` bytes, else `slug(data, max)`. */
export function limitedSlug(data: string, max: number = DEFAULT_SLUG_MAX_SIZE): string {
  return shouldBeSlugged(data, max) ? slug(data, max) : data;
}

/** Empty, or `[\w][\w.-]*` of at most 128 bytes. */
export function isValidDockerTag(name: string): boolean {
  if (name === '') return true;
  return dockerTagPattern.test(name) && byteLength(name) <= DOCKER_TAG_MAX_SIZE;
}

/** `name` when it is a valid Docker tag, else `slug(name, 128)`. */
export function dockerTag(name: string): string {
  return isValidDockerTag(name) ? name : slug(name, DOCKER_TAG_MAX_SIZE);
}
