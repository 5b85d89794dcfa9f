// `/v2/`: the API version check, which also says what this server can do (`Stowage-Capabilities`).
import { CAPABILITIES_HEADER, encodeCapabilities } from '../capabilities.js';
import type { HandlerContext } from '../internal/context.js';
import { type Exchange, json } from '../internal/exchange.js';
import { methodNotAllowed } from '../internal/params.js';

/**
 * Sets `Stowage-Capabilities` on the answer to come, whatever its status: it
 * is set before the authorizer is asked, and an error answer keeps it, so a
 * 401 challenge carries it too.
 */
export async function announceCapabilities(context: HandlerContext, exchange: Exchange): Promise<void> {
  exchange.response.setHeader(CAPABILITIES_HEADER, encodeCapabilities(await context.capabilities()));
}

export async function ping(exchange: Exchange): Promise<void> {
  const method = exchange.request.method;
  if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed('GET');
  json(exchange, 200, {});
}
