// Who is signed in, and what they may do per repository. A change of session (log in, log out)
// forgets everything fetched under the old one and re-renders the page.
import { fetchAccess, fetchSession, type Session, useCsrf } from './api.js';
import { forgetListings } from './listing.js';

/** Before the first answer, and when `/ui/api/session` cannot be had: anonymous, no login offered. */
const ANONYMOUS: Session = { user: null, csrf: null, login: 'none' };

let current: Session = ANONYMOUS;
let loaded = false;
const listeners = new Set<(session: Session) => void>();
const access = new Map<string, Promise<Set<string>>>();

export function session(): Session {
  return current;
}

export function onSessionChange(listener: (session: Session) => void): void {
  listeners.add(listener);
}

/** Asks the server who this is; tells the listeners when that changed. */
export async function refreshSession(): Promise<Session> {
  let next: Session;
  try {
    next = await fetchSession();
  } catch {
    // an older server without the session endpoints: browse anonymously
    next = ANONYMOUS;
  }
  const changed = next.user !== current.user || next.csrf !== current.csrf || next.login !== current.login;
  current = next;
  useCsrf(next.csrf);
  if (changed) {
    access.clear();
    // what the first load fetched meanwhile went with the same cookie: only a later change matters
    if (loaded) forgetListings();
    for (const listener of listeners) listener(next);
  }
  loaded = true;
  return next;
}

/** The actions the session may do on `repository` (asked once per session); none when the server cannot say. */
export function accessTo(repository: string): Promise<Set<string>> {
  let actions = access.get(repository);
  if (!actions) {
    actions = fetchAccess(repository).catch(() => new Set<string>());
    access.set(repository, actions);
  }
  return actions;
}
