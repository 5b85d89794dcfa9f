export { pullableRepositories } from './auth/decide.js';
export * from './auth/index.js';
export { REQUEST_CHANNEL, type RequestEvent } from './diagnostics.js';
export {
  HttpError,
  type HttpErrorOptions,
  isHttpError,
  type OciError,
  toWireError,
  type WireError,
} from './errors.js';
export {
  createRegistryHandler,
  type Logger,
  type RegistryHandler,
  type RegistryHandlerOptions,
  type RegistryLimits,
  type RequestRecord,
} from './handler.js';
export { parseRoute, type Route, routeLabel } from './routes.js';
export {
  createRegistryServer,
  type MinBodyRate,
  originForm,
  type RegistryServerOptions,
} from './server.js';
