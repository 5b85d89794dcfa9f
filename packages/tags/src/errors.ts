import { StowageError } from '@stowage/oci';

/** A tag that does not have the shape a werf record or stage tag must have. */
export class TagParseError extends StowageError<'TAG_INVALID'> {
  constructor(tag: string, reason: string) {
    const shown = tag.length > 200 ? `${tag.slice(0, 200)}…` : tag;
    super('TAG_INVALID', `unexpected tag format ${JSON.stringify(shown)}: ${reason}`, {
      details: { tag: shown, reason },
    });
  }
}
