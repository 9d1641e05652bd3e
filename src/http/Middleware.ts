import { HttpApiMiddleware, HttpApiSecurity } from "effect/http-api"
import { BadRequestWire, ServerMisconfiguredWire, UnauthorizedWire } from "./ApiErrors.ts"

/** Bearer-key check for every /v1 endpoint. Implemented in `AuthorizationLive.ts`. */
export class Authorization extends HttpApiMiddleware.Service<Authorization>()("ai-image-gateway/http/Authorization", {
  security: { bearer: HttpApiSecurity.bearer },
  error: [UnauthorizedWire, ServerMisconfiguredWire]
}) {}

/**
 * Turns request decoding failures (malformed JSON, a field of the wrong type or
 * out of range) into OpenAI's 400 naming the field. Implemented in `RequestValidationLive.ts`.
 */
export class RequestValidation extends HttpApiMiddleware.Service<RequestValidation>()("ai-image-gateway/http/RequestValidation", {
  error: BadRequestWire
}) {}
