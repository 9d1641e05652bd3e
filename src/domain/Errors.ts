import { Schema } from "effect"

/**
 * Domain errors. They carry what went wrong, not how it is shown: the OpenAI
 * wire shape and the status codes live in `src/http/ApiErrors.ts`.
 */

export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  message: Schema.String,
  param: Schema.NullOr(Schema.String),
  code: Schema.NullOr(Schema.String)
}) {}

export class AuthenticationFailed extends Schema.TaggedError<AuthenticationFailed>()("AuthenticationFailed", {
  message: Schema.String,
  code: Schema.NullOr(Schema.String)
}) {}

export class ModelNotFound extends Schema.TaggedError<ModelNotFound>()("ModelNotFound", {
  model: Schema.String
}) {}

/** The operator has to fix the deployment; retrying will not help. */
export class GatewayMisconfigured extends Schema.TaggedError<GatewayMisconfigured>()("GatewayMisconfigured", {
  message: Schema.String
}) {}

/** The upstream answered 4xx (but not 429): the same request would fail again. */
export class UpstreamRejected extends Schema.TaggedError<UpstreamRejected>()("UpstreamRejected", {
  status: Schema.Int,
  detail: Schema.NullOr(Schema.String)
}) {}

/** 429, 5xx or a network failure: worth another try. */
export class UpstreamUnavailable extends Schema.TaggedError<UpstreamUnavailable>()("UpstreamUnavailable", {
  status: Schema.NullOr(Schema.Int),
  retryAfterMs: Schema.NullOr(Schema.Number),
  detail: Schema.NullOr(Schema.String)
}) {}

/** An attempt ran past UPSTREAM_TIMEOUT_MS. Not retried: each try costs a full generation. */
export class UpstreamTimeout extends Schema.TaggedError<UpstreamTimeout>()("UpstreamTimeout", {
  timeoutMs: Schema.Number
}) {}

/** A 2xx answer that holds no usable image. */
export class UpstreamMalformed extends Schema.TaggedError<UpstreamMalformed>()("UpstreamMalformed", {
  detail: Schema.String
}) {}

export const UpstreamFailure = Schema.Union([UpstreamRejected, UpstreamUnavailable, UpstreamTimeout, UpstreamMalformed])
export type UpstreamFailure = typeof UpstreamFailure.Type

export const isRetryable = (failure: UpstreamFailure): boolean => failure._tag === "UpstreamUnavailable"

/** The upstream client's single error type: the last failure and how many attempts were made. */
export class UpstreamError extends Schema.TaggedError<UpstreamError>()("UpstreamError", {
  reason: UpstreamFailure,
  attempts: Schema.Int
}) {}

/** The statistics store is not bound, or did not answer. Never fails a generation: only the cockpit's reads see it. */
export class UsageStoreUnavailable extends Schema.TaggedError<UsageStoreUnavailable>()("UsageStoreUnavailable", {
  message: Schema.String
}) {}
