export {
  type ClientPutBlobOptions,
  createRegistryClient,
  type PingResult,
  type RegistryClient,
  referrersTag,
} from './client.js';
export {
  type CopyDestination,
  type CopyOptions,
  type CopyProgressEvent,
  type CopyResult,
  type CopySource,
  copyImage,
} from './copy-image.js';
export {
  type CredentialLookupOptions,
  type Credentials,
  credentialConfigPaths,
  lookupCredentials,
  runCredentialHelper,
} from './credentials.js';
export {
  CredentialsError,
  isResponseError,
  RegistryClientOptionsError,
  type RegistryDiagnostic,
  type RegistryEndpoint,
  RegistryNetworkError,
  type RegistryNetworkErrorCode,
  RegistryProtocolError,
  RegistryResponseError,
  RegistryServerError,
  type RegistryServerErrorCode,
  type ResponseError,
  registryErrorCode,
} from './errors.js';
export type { BlobSourceFactory, ClientBlobBody } from './internal/body.js';
export { redactUrl } from './internal/redact.js';
export { parseRetryAfter } from './internal/retry.js';
export { REQUEST_CHANNEL, type RequestEvent } from './internal/transport.js';
export { type AuthChallenge, parseWwwAuthenticate } from './internal/www-authenticate.js';
export {
  type AuthOptions,
  type CredentialsOption,
  type HostTlsOptions,
  type Logger,
  type RegistryClientOptions,
  type ResolvedRegistryClientOptions,
  type RetryOptions,
  resolveOptions,
  type TimeoutOptions,
} from './options.js';
