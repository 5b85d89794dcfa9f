// undici's Pool without undici's index. The index loads every dispatcher, fetch,
// cookies, websockets and the mocks, and touches the globals that make Node load
// its own bundled undici too: 80-110 ms of a CLI command's start-up on our
// machines, against about 25 ms for the pool and the request API alone. The index
// does one thing the pool needs: it mixes the request API (`request`, `stream`,
// ...) into Dispatcher's prototype, so that is done here the same way. When
// undici's files move (a new major), the deep paths fail to load and the index
// is used instead: slower to start, the same behaviour.
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const require = createRequire(import.meta.url);

function load(): typeof Undici.Pool {
  try {
    const pool = require('undici/lib/dispatcher/pool.js') as typeof Undici.Pool;
    const dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
    const api = require('undici/lib/api/index.js') as object;
    Object.assign(dispatcher.prototype, api);
    if (typeof (pool.prototype as { request?: unknown }).request !== 'function')
      throw new Error('no request');
    return pool;
  } catch {
    return (require('undici') as typeof Undici).Pool;
  }
}

/** undici's `Pool`, with the request API. */
export const Pool: typeof Undici.Pool = load();
