// The operations each records worker performs, and what they leave behind, shared
// by the worker (which runs them) and the test (which replays the acknowledged ones).

export type Op =
  | { readonly kind: 'create'; readonly id: string; readonly name: string }
  | { readonly kind: 'rename'; readonly id: string; readonly name: string }
  | { readonly kind: 'delete'; readonly id: string }
  | { readonly kind: 'tag'; readonly tag: string }
  | { readonly kind: 'untag'; readonly tag: string }
  | { readonly kind: 'contest'; readonly id: string }
  | { readonly kind: 'peek' };

export const CONTESTED = 'contest/app:latest';
export const SHARED_REPOSITORY = 'shared/app';

export function keeperId(label: string): string {
  return `${label}-keeper`;
}

/** `count` records created; every third renamed, every third deleted; a tag per record. */
export function opsFor(label: string, count: number): Op[] {
  const ops: Op[] = [{ kind: 'create', id: keeperId(label), name: `${label}/keeper:v1` }];
  for (let i = 0; i < count; i++) {
    ops.push({ kind: 'create', id: `${label}-${i}`, name: `${label}/app:n${i}` });
    ops.push({ kind: 'tag', tag: `${label}-t${i}` });
    if (i % 3 === 2) {
      ops.push({ kind: 'rename', id: `${label}-${i - 1}`, name: `${label}/app:m${i - 1}` });
      ops.push({ kind: 'delete', id: `${label}-${i - 2}` });
      ops.push({ kind: 'untag', tag: `${label}-t${i - 2}` });
    }
    if (i % 25 === 0) ops.push({ kind: 'contest', id: keeperId(label) }, { kind: 'peek' });
  }
  return ops;
}

export interface Expected {
  /** Record ID to its names (the keeper's contested name left out). */
  readonly records: Map<string, string[]>;
  readonly tags: Set<string>;
  /** IDs or tags whose state is unknown: the operation in flight when the worker died. */
  readonly uncertain: Set<string>;
}

/** The state `ops[0..acknowledged)` leaves, with the next operation's target uncertain. */
export function replay(ops: readonly Op[], acknowledged: number): Expected {
  const records = new Map<string, string[]>();
  const tags = new Set<string>();
  for (const op of ops.slice(0, acknowledged)) {
    if (op.kind === 'create') records.set(op.id, [op.name]);
    else if (op.kind === 'rename') records.set(op.id, [op.name]);
    else if (op.kind === 'delete') records.delete(op.id);
    else if (op.kind === 'tag') tags.add(op.tag);
    else if (op.kind === 'untag') tags.delete(op.tag);
  }
  const uncertain = new Set<string>();
  const next = ops[acknowledged];
  if (next && 'id' in next) uncertain.add(next.id);
  if (next && 'tag' in next) uncertain.add(next.tag);
  return { records, tags, uncertain };
}
