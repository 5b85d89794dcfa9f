// The handler's diagnostics channel: one event per finished request, published only when someone listens.
import diagnosticsChannel from 'node:diagnostics_channel';

/** `node:diagnostics_channel` name of the event published once per finished request (a `RequestEvent`). */
export const REQUEST_CHANNEL = 'stowage:registry-server:request';

/** What `REQUEST_CHANNEL` carries for each request once its answer is out (or cut). */
export interface RequestEvent {
  readonly id: string;
  readonly method: string;
  /** The route label (`ping`, `catalog`, `tags`, `manifest`, `blob`, `uploads`, `upload`, `referrers`, `unknown`). */
  readonly route: string;
  /** The status sent; 499 when the client went away (`aborted`). */
  readonly status: number;
  readonly durationMs: number;
  readonly aborted: boolean;
  readonly repository?: string;
}

const requestChannel = diagnosticsChannel.channel(REQUEST_CHANNEL);

/** Publishes a request event; builds nothing when the channel has no subscribers. */
export function publishRequest(event: () => RequestEvent): void {
  if (requestChannel.hasSubscribers) requestChannel.publish(event());
}
