import { createHash } from 'node:crypto';

/** werf joins hash arguments with this separator before hashing. */
export const HASH_ARGUMENT_SEPARATOR = ':::';

const encoder = new TextEncoder();

/** SHA3-224 (FIPS 202) of the arguments joined with `:::`, as 56 lowercase hex characters. */
export function sha3_224Hash(...args: readonly string[]): string {
  return createHash('sha3-224').update(args.join(HASH_ARGUMENT_SEPARATOR), 'utf8').digest('hex');
}

/** SHA-256 of the arguments joined with `:::`, as 64 lowercase hex characters. */
export function sha256Hash(...args: readonly string[]): string {
  return createHash('sha256').update(args.join(HASH_ARGUMENT_SEPARATOR), 'utf8').digest('hex');
}

/** MurmurHash3, x86 32-bit variant. */
export function murmur3_32(bytes: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = bytes.byteLength >>> 2;
  const mix = (k: number) => {
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    return Math.imul(k, c2);
  };
  for (let i = 0; i < blocks; i++) {
    const o = i * 4;
    const k = (bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24)) >>> 0;
    h ^= mix(k);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks * 4;
  const rest = bytes.byteLength & 3;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= bytes[tail + 2]! << 16;
    if (rest >= 2) k ^= bytes[tail + 1]! << 8;
    k ^= bytes[tail]!;
    h ^= mix(k);
  }
  h ^= bytes.byteLength;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * werf's LegacyMurmurHash: MurmurHash3 x86 32-bit (seed 0) of the arguments
 * joined with `:::`, written as lowercase hex without zero padding (1 to 8
 * characters: `legacyMurmurHash('')` is `0`).
 */
export function legacyMurmurHash(...args: readonly string[]): string {
  return murmur3_32(encoder.encode(args.join(HASH_ARGUMENT_SEPARATOR))).toString(16);
}

/** Reverses a string by Unicode code point (as werf's util.Reverse does with runes). */
export function reverseString(value: string): string {
  return Array.from(value).reverse().join('');
}

/** Length of a string in UTF-8 bytes: every werf length rule counts bytes. */
export function byteLength(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}
