import * as Schema from "effect/Schema"

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

/** What every configuration problem answers with; `problem` names the variable and entry, never a value. */
export const invalidConfiguration = (problem: string) =>
  new GatewayMisconfigured({ message: `Invalid gateway configuration: ${problem}` })

/** The upstream answered 4xx (but not 429): the same request would fail again. */
export class UpstreamRejected extends Schema.TaggedError<UpstreamRejected>()("UpstreamRejected", {
  status: Schema.Int,
  detail: Schema.NullOr(Schema.String),
  /** The request field the rejection is about, when the upstream says (else the prompt). */
  param: Schema.optional(Schema.String)
}) {}

/** 429, 5xx or a network failure: worth another try. */
export class UpstreamUnavailable extends Schema.TaggedError<UpstreamUnavailable>()("UpstreamUnavailable", {
  status: Schema.NullOr(Schema.Int),
  retryAfterMs: Schema.NullOr(Schema.Number),
  detail: Schema.NullOr(Schema.String)
}) {}

/**
 * An attempt ran past UPSTREAM_TIMEOUT_MS (`timeoutMs`), or the upstream said it timed out itself
 * (HTTP 504, Workers AI's timeout codes: `timeoutMs` null). Not retried: each try costs a full generation.
 */
export class UpstreamTimeout extends Schema.TaggedError<UpstreamTimeout>()("UpstreamTimeout", {
  timeoutMs: Schema.NullOr(Schema.Number)
}) {}

/** A 2xx answer that holds no usable image. */
export class UpstreamMalformed extends Schema.TaggedError<UpstreamMalformed>()("UpstreamMalformed", {
  detail: Schema.String
}) {}

/** The upstream instance's circuit is open after repeated failures: it gets no calls until `retryAfterMs` has passed. */
export class UpstreamCircuitOpen extends Schema.TaggedError<UpstreamCircuitOpen>()("UpstreamCircuitOpen", {
  retryAfterMs: Schema.Number
}) {}

export const UpstreamFailure = Schema.Union([
  UpstreamRejected,
  UpstreamUnavailable,
  UpstreamTimeout,
  UpstreamMalformed,
  UpstreamCircuitOpen
])
export type UpstreamFailure = typeof UpstreamFailure.Type

export const isRetryable = (failure: UpstreamFailure): boolean => failure._tag === "UpstreamUnavailable"

/**
 * A rejection caused by the request itself (a bad prompt, a content policy): another model would
 * most likely refuse it too, so it neither fails over nor counts against the upstream's circuit.
 * 401/403/404 mean our configuration of that upstream is wrong: those do fail over.
 */
export const isRequestRejection = (failure: UpstreamFailure): boolean =>
  failure._tag === "UpstreamRejected" && (failure.status === 400 || failure.status === 422)

/**
 * The upstream port's single error type: the last failure, how many attempts were made, which
 * upstream instance gave it, and how many times the request moved on to a fallback model.
 */
export class UpstreamError extends Schema.TaggedError<UpstreamError>()("UpstreamError", {
  reason: UpstreamFailure,
  attempts: Schema.Int,
  upstream: Schema.String,
  failovers: Schema.Int
}) {}

/** The statistics store is not bound, or did not answer. Never fails a generation: only the cockpit's reads see it. */
export class UsageStoreUnavailable extends Schema.TaggedError<UsageStoreUnavailable>()("UsageStoreUnavailable", {
  message: Schema.String
}) {}

/** A named key is over its `rpm` (`reason: "rate"`) or its daily images (`"quota"`): refused before any upstream call. */
export class KeyLimitExceeded extends Schema.TaggedError<KeyLimitExceeded>()("KeyLimitExceeded", {
  reason: Schema.Literals(["rate", "quota"]),
  key: Schema.String,
  limit: Schema.Int,
  /** For a quota: images already charged today, and the images this request asked for. */
  used: Schema.Int,
  requested: Schema.Int,
  retryAfterMs: Schema.Number,
  /** Unix ms when a quota resets (the next UTC midnight); for a rate, when the next request fits. */
  resetsAt: Schema.Number
}) {}

/** The limits store did not answer, and LIMITS_FAIL_OPEN=false: the request is refused, not let through unlimited. */
export class LimiterUnavailable extends Schema.TaggedError<LimiterUnavailable>()("LimiterUnavailable", {
  message: Schema.String
}) {}
