export { canSkipImage, type SyncImageOptions, syncImage } from './commit.js';
export {
  type ContentRule,
  type ContentRuleInput,
  type Credential,
  type DistributionProxyInput,
  type ParseSyncConfigOptions,
  parseSyncConfig,
  proxyToSyncConfig,
  type RegistryInput,
  type SyncConfig,
  type SyncConfigInput,
  type TagRules,
  type TagRulesInput,
  type UpstreamConfig,
} from './config.js';
export { configError, SyncError, type SyncErrorCode } from './errors.js';
export { connectFirst } from './mirrors.js';
export { createPullThroughRegistry, type PullThroughOptions, type PullThroughRegistry } from './on-demand.js';
export { runSyncPass, type SyncPassOptions } from './pass.js';
export type { ImageOutcome, SyncEvent, SyncReport } from './report.js';
export { filterTags, matchLocalRepository, matchUpstreamRepository, type RuleMatch } from './rules.js';
export { type SyncService, type SyncServiceOptions, startSyncService } from './service.js';
export type { StagingJournal } from './staging.js';
export {
  type ConnectUpstream,
  clientConnector,
  type UpstreamClientOptions,
  upstreamClientOptions,
} from './upstream.js';
