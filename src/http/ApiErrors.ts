import * as HttpApiSchema from "effect/http-api/HttpApiSchema"
import * as Schema from "effect/Schema"

/**
 * The HTTP face of every failure: OpenAI's `{"error": {message, type, param, code}}`
 * body with the status and the retry headers the SDKs read. Handlers map
 * domain errors to these classes; nothing else decides a status code.
 */

export const ErrorObject = Schema.Struct({
  message: Schema.String,
  type: Schema.String,
  param: Schema.NullOr(Schema.String),
  code: Schema.NullOr(Schema.String)
})
export type ErrorObject = typeof ErrorObject.Type

export const ErrorBody = Schema.Struct({ error: ErrorObject })
export type ErrorBody = typeof ErrorBody.Type

export const errorBody = (type: string, message: string, param: string | null = null, code: string | null = null): ErrorBody => ({
  error: { message, type, param, code }
})

const ErrorHeaders = {
  "x-should-retry": Schema.optional(Schema.String),
  "retry-after": Schema.optional(Schema.String)
}
type ErrorHeaders = { readonly "x-should-retry"?: string; readonly "retry-after"?: string }

const Fields = {
  message: Schema.String,
  param: Schema.NullOr(Schema.String),
  code: Schema.NullOr(Schema.String)
}
type Fields = { readonly message: string; readonly param: string | null; readonly code: string | null }

/** Encodes an error class as the OpenAI body plus headers, under one fixed status. */
const openAi = <S extends Schema.Top & { readonly Type: Fields }>(
  status: number,
  type: string | ((error: S["Type"]) => string),
  make: (fields: Fields & { readonly retryAfter?: string }) => S["Type"],
  headers: (error: S["Type"]) => ErrorHeaders = () => ({})
) =>
  HttpApiSchema.encodeToWithHeaders<S, typeof ErrorBody, typeof ErrorHeaders>(
    { body: ErrorBody.pipe(HttpApiSchema.status(status)), headers: ErrorHeaders },
    {
      decode: ({ body, headers: received }) =>
        make({
          message: body.error.message,
          param: body.error.param,
          code: body.error.code,
          ...(received["retry-after"] === undefined ? {} : { retryAfter: received["retry-after"] })
        }),
      encode: (error) => ({
        body: errorBody(typeof type === "string" ? type : type(error), error.message, error.param, error.code),
        headers: headers(error)
      })
    }
  )

export const INSUFFICIENT_QUOTA = "insufficient_quota"
export const LIMITS_UNAVAILABLE = "limits_unavailable"

const noRetry = () => ({ "x-should-retry": "false" })

/** The OpenAI `type` of each error class: one place, for the wire encoding and for the usage record. */
export const WIRE_TYPES = {
  BadRequest: "invalid_request_error",
  Unauthorized: "invalid_request_error",
  Forbidden: "invalid_request_error",
  NotFound: "invalid_request_error",
  PayloadTooLarge: "invalid_request_error",
  RateLimited: "rate_limit_error",
  UpstreamFailed: "upstream_error",
  UpstreamTimedOut: "upstream_error",
  UpstreamUnavailableNow: "upstream_error",
  ServerMisconfigured: "server_error",
  StatsUnavailable: "server_error"
} as const

/**
 * What the usage record keeps of an error a handler or middleware failed with: its `code`, else its
 * `type`; `undefined` for anything that is not one of the API's error classes.
 */
export const recordedErrorOf = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null || !("_tag" in error)) return undefined
  const tag = String(error._tag)
  if (!Object.hasOwn(WIRE_TYPES, tag)) return undefined
  const code = "code" in error && typeof error.code === "string" ? error.code : null
  return code ?? WIRE_TYPES[tag as keyof typeof WIRE_TYPES]
}

export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", Fields) {}
export const BadRequestWire = BadRequest.pipe(openAi<typeof BadRequest>(400, WIRE_TYPES.BadRequest, (f) => new BadRequest(f)))

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", Fields) {}
export const UnauthorizedWire = Unauthorized.pipe(
  openAi<typeof Unauthorized>(401, WIRE_TYPES.Unauthorized, (f) => new Unauthorized(f))
)

/** The key is valid but its role does not allow this endpoint. */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", Fields) {}
export const ForbiddenWire = Forbidden.pipe(openAi<typeof Forbidden>(403, WIRE_TYPES.Forbidden, (f) => new Forbidden(f)))

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", Fields) {}
export const NotFoundWire = NotFound.pipe(openAi<typeof NotFound>(404, WIRE_TYPES.NotFound, (f) => new NotFound(f)))

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", Fields) {}
export const PayloadTooLargeWire = PayloadTooLarge.pipe(
  openAi<typeof PayloadTooLarge>(413, WIRE_TYPES.PayloadTooLarge, (f) => new PayloadTooLarge(f))
)

/**
 * `retried`: the gateway already retried the upstream, so SDKs are told not to multiply its attempts.
 * One class for every 429 (HttpApi allows one error schema with headers per status): a key's spent daily
 * quota is OpenAI's `insufficient_quota`, whose `type` is that code too, and which no SDK should retry.
 */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  ...Fields,
  retryAfterSeconds: Schema.Int,
  retried: Schema.Boolean
}) {}
export const RateLimitedWire = RateLimited.pipe(
  openAi<typeof RateLimited>(
    429,
    (error) => (error.code === INSUFFICIENT_QUOTA ? INSUFFICIENT_QUOTA : WIRE_TYPES.RateLimited),
    (f) => new RateLimited({ ...f, retryAfterSeconds: Number(f.retryAfter ?? 1), retried: false }),
    (error) => ({
      "retry-after": String(error.retryAfterSeconds),
      ...(error.retried || error.code === INSUFFICIENT_QUOTA ? { "x-should-retry": "false" } : {})
    })
  )
)

export class UpstreamFailed extends Schema.TaggedError<UpstreamFailed>()("UpstreamFailed", Fields) {}
export const UpstreamFailedWire = UpstreamFailed.pipe(
  openAi<typeof UpstreamFailed>(502, WIRE_TYPES.UpstreamFailed, (f) => new UpstreamFailed(f), noRetry)
)

export class UpstreamTimedOut extends Schema.TaggedError<UpstreamTimedOut>()("UpstreamTimedOut", Fields) {}
export const UpstreamTimedOutWire = UpstreamTimedOut.pipe(
  openAi<typeof UpstreamTimedOut>(504, WIRE_TYPES.UpstreamTimedOut, (f) => new UpstreamTimedOut(f), noRetry)
)

/**
 * Every upstream that could serve the request has its circuit open: fail fast, and say when to try again.
 * Also the one 503 with headers (HttpApi allows one per status) for a key's limits that cannot be checked
 * when LIMITS_FAIL_OPEN=false: code `limits_unavailable`, type `server_error`.
 */
export class UpstreamUnavailableNow extends Schema.TaggedError<UpstreamUnavailableNow>()("UpstreamUnavailableNow", {
  ...Fields,
  retryAfterSeconds: Schema.Int
}) {}
export const UpstreamUnavailableNowWire = UpstreamUnavailableNow.pipe(
  openAi<typeof UpstreamUnavailableNow>(
    503,
    (error) => (error.code === LIMITS_UNAVAILABLE ? "server_error" : WIRE_TYPES.UpstreamUnavailableNow),
    (f) => new UpstreamUnavailableNow({ ...f, retryAfterSeconds: Number(f.retryAfter ?? 1) }),
    (error) => ({ "retry-after": String(error.retryAfterSeconds) })
  )
)

/** The deployment is wrong (bad config, no API_KEYS): only the operator can fix it, so clients must not retry. */
export class ServerMisconfigured extends Schema.TaggedError<ServerMisconfigured>()("ServerMisconfigured", Fields) {}
export const ServerMisconfiguredWire = ServerMisconfigured.pipe(
  openAi<typeof ServerMisconfigured>(500, WIRE_TYPES.ServerMisconfigured, (f) => new ServerMisconfigured(f), noRetry)
)

/** The usage statistics store is off or did not answer; generation is unaffected. */
export class StatsUnavailable extends Schema.TaggedError<StatsUnavailable>()("StatsUnavailable", Fields) {}
export const StatsUnavailableWire = StatsUnavailable.pipe(
  openAi<typeof StatsUnavailable>(503, WIRE_TYPES.StatsUnavailable, (f) => new StatsUnavailable(f), noRetry)
)
