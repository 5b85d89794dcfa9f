import { StowageError } from '@stowage/oci';

/** Options the database registry cannot work with; `details.option` names the one. */
export class DatabaseStoreOptionsError extends StowageError<'OPTIONS_INVALID'> {
  constructor(option: string, problem: string) {
    super('OPTIONS_INVALID', `${option}: ${problem}`, { details: { option } });
  }
}
