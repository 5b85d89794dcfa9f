export { type SelfSignedOptions, selfSignedCertificate } from './certificates.js';
export {
  type ConformanceSubject,
  type RegistryConformanceOptions,
  registryConformance,
} from './conformance/index.js';
export {
  type CountingProxy,
  type FailNextOptions,
  type FaultMatch,
  type ProxiedRequest,
  type ProxiedRequestFilter,
  type StartCountingProxyOptions,
  startCountingProxy,
} from './counting-proxy.js';
export { DistributionTreeWriter, type PopulateOptions, populateTree } from './distribution-tree.js';
export {
  type DockerRegistry,
  freePort,
  type HtpasswdUser,
  type StartDockerRegistryOptions,
  startDockerRegistry,
} from './docker-registry.js';
export {
  createMemoryRegistry,
  type MemoryRegistry,
  type MemoryRegistryOptions,
  type MemoryRegistryWithoutSessions,
} from './memory-registry.js';
export { findExecutable, isCI, type PeerStatus, peerStatus, requirePeers } from './peers.js';
export {
  createTestDatabase,
  postgresAdminUrl,
  postgresPeer,
  type TestDatabase,
  terminateConnections,
} from './postgres.js';
export {
  collect,
  emptyConfig,
  prng,
  pushImage,
  pushIndex,
  type RandomBlob,
  type RandomImage,
  type RandomImageOptions,
  type RandomIndex,
  type RandomIndexOptions,
  type RandomManifest,
  randomArtifact,
  randomBlob,
  randomBytes,
  randomImage,
  randomIndex,
  randomTarLayer,
} from './random.js';
export {
  expectedTags,
  isRandomIndex,
  populateWithSkopeo,
  pushedImages,
  pushedManifest,
  pushWithSkopeo,
  type RegistryContents,
  readRegistryContents,
  type ServedManifest,
  type SkopeoCopyOptions,
  type SkopeoPush,
  skopeo,
  skopeoCopy,
  skopeoTreePlan,
  writeSkopeoSources,
} from './skopeo-tree.js';
export { type SnapshotOptions, snapshotTree } from './snapshot.js';
export { REPO_ROOT, SOURCE_NODE_FLAGS, spawnSource } from './source-process.js';
export { type RegistryCall, type SpyOptions, type SpyRegistry, spyRegistry } from './spy.js';
export { runVitestChild, type VitestAssertion, type VitestReport } from './vitest-child.js';
