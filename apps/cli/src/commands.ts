// Every command of stowage, in the order the top help lists them. A new command
// is a file exporting a defineCommand(...) and a line here; nothing else.
import { blobDeleteCommand, blobGetCommand, blobPutCommand } from './blobs.js';
import type { Command } from './command.js';
import { completionCommand } from './completion.js';
import { copyCommand } from './copy.js';
import { dbMigrateCommand, dbStatusCommand } from './db.js';
import { importCommand } from './import.js';
import { inspectCommand, referrersCommand, storeInspectCommand } from './inspect.js';
import { loginCommand, logoutCommand } from './login.js';
import {
  configCommand,
  deleteCommand,
  digestCommand,
  manifestDeleteCommand,
  manifestGetCommand,
  manifestPutCommand,
  tagCommand,
} from './manifests.js';
import { mutateCommand } from './mutate.js';
import {
  stagesByDigestCommand,
  stagesCopyToFinalCommand,
  stagesLsCommand,
  stagesRejectCommand,
  stagesRmCommand,
  stagesShowCommand,
} from './stages.js';
import {
  managedImagesAddCommand,
  managedImagesLsCommand,
  managedImagesRmCommand,
  stagesCustomTagsLsCommand,
  stagesImportMetadataLsCommand,
  stagesImportMetadataShowCommand,
  stagesMetadataLsCommand,
} from './stages-records.js';
import { storeFsckCommand, storeGcCommand, storeImagesCommand, storeRmCommand } from './store.js';
import { syncCommand } from './sync.js';
import { catalogCommand, lsCommand } from './tags.js';

export const COMMANDS: readonly Command[] = [
  lsCommand,
  catalogCommand,
  manifestGetCommand,
  manifestPutCommand,
  manifestDeleteCommand,
  digestCommand,
  configCommand,
  inspectCommand,
  referrersCommand,
  blobGetCommand,
  blobPutCommand,
  blobDeleteCommand,
  tagCommand,
  deleteCommand,
  copyCommand,
  mutateCommand,
  loginCommand,
  logoutCommand,
  storeImagesCommand,
  storeInspectCommand,
  storeRmCommand,
  storeGcCommand,
  storeFsckCommand,
  stagesLsCommand,
  stagesShowCommand,
  stagesByDigestCommand,
  stagesRejectCommand,
  stagesRmCommand,
  stagesCopyToFinalCommand,
  stagesMetadataLsCommand,
  stagesCustomTagsLsCommand,
  stagesImportMetadataLsCommand,
  stagesImportMetadataShowCommand,
  managedImagesLsCommand,
  managedImagesAddCommand,
  managedImagesRmCommand,
  syncCommand,
  importCommand,
  dbMigrateCommand,
  dbStatusCommand,
  completionCommand(() => COMMANDS),
];
