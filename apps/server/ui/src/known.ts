// What the manifest pages learnt about tags (size, creation date), shown in the tag list "where
// known": the list itself makes no request per tag.

export interface KnownTag {
  readonly digest?: string;
  /** The image's compressed size: its config and layers (an index: unknown). */
  readonly size?: number;
  readonly created?: string;
}

const known = new Map<string, KnownTag>();

export function knownTag(repository: string, tag: string): KnownTag | undefined {
  return known.get(`${repository}\n${tag}`);
}

export function learnTag(repository: string, tag: string, details: KnownTag): void {
  known.set(`${repository}\n${tag}`, { ...knownTag(repository, tag), ...details });
}

export function forgetTag(repository: string, tag: string): void {
  known.delete(`${repository}\n${tag}`);
}
