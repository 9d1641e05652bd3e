import * as HttpApiMiddleware from "effect/http-api/HttpApiMiddleware"
import * as HttpApiSecurity from "effect/http-api/HttpApiSecurity"
import type { CurrentKey } from "../services/CurrentKey.ts"
import { BadRequestWire, ForbiddenWire, ServerMisconfiguredWire, UnauthorizedWire } from "./ApiErrors.ts"

/** Bearer-key check for every /v1 endpoint; provides the caller's key. Implemented in `AuthorizationLive.ts`. */
export class Authorization extends HttpApiMiddleware.Service<Authorization, { provides: CurrentKey; requires: never }>()(
  "ai-image-gateway/http/Authorization",
  {
    security: { bearer: HttpApiSecurity.bearer },
    error: [UnauthorizedWire, ServerMisconfiguredWire]
  }
) {}

/** Admin keys only (the gateway's own endpoints); after `Authorization`. Implemented in `AuthorizationLive.ts`. */
export class AdminOnly extends HttpApiMiddleware.Service<AdminOnly, { provides: never; requires: CurrentKey }>()(
  "ai-image-gateway/http/AdminOnly",
  { error: ForbiddenWire }
) {}

/**
 * Turns request decoding failures (malformed JSON, a field of the wrong type or
 * out of range) into OpenAI's 400 naming the field. Implemented in `RequestValidationLive.ts`.
 */
export class RequestValidation extends HttpApiMiddleware.Service<RequestValidation>()("ai-image-gateway/http/RequestValidation", {
  error: BadRequestWire
}) {}
