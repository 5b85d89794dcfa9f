export {
  type DockerRegistry,
  type HtpasswdUser,
  type StartDockerRegistryOptions,
  startDockerRegistry,
} from './docker-registry.js';
export { findExecutable, isCI, type PeerStatus, peerStatus, requirePeers } from './peers.js';
