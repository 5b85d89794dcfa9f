"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.matchUpstreamRepository = matchUpstreamRepository;
exports.matchLocalRepository = matchLocalRepository;
exports.filterTags = filterTags;
/** The rule covering an upstream repository and its local name, or `undefined` when no rule covers it. */
function matchUpstreamRepository(_upstream, _remote) {
    throw new Error('not built yet');
}
/**
 * The reverse, for on-demand: the upstream repository a local name comes
 * from, under the first rule that maps some upstream name to it. An upstream
 * without content rules mirrors every name as it is.
 */
function matchLocalRepository(_upstream, _local) {
    throw new Error('not built yet');
}
/** The tags a rule keeps, in the order given: `regex`, then `excludeRegex`, then `semver`. */
function filterTags(_rule, _tags) {
    throw new Error('not built yet');
}
