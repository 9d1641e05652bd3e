import * as Effect from "effect/Effect"
import type { InvalidRequest, KeyLimitExceeded, LimiterUnavailable, ModelNotFound, UpstreamError } from "../domain/Errors.ts"
import { noteUsage } from "../services/RequestUsage.ts"
import {
  BadRequest,
  type ErrorBody,
  errorBody,
  INSUFFICIENT_QUOTA,
  LIMITS_UNAVAILABLE,
  NotFound,
  RateLimited,
  recordedErrorOf,
  UpstreamFailed,
  UpstreamTimedOut,
  UpstreamUnavailableNow,
  WIRE_TYPES
} from "./ApiErrors.ts"

/** Domain errors to their HTTP form. The only place that decides which status an upstream failure becomes. */

/**
 * Fails a handler with an API error, noting its code for the usage record first: HttpApi turns a handler's
 * error into its answer before any middleware sees it, so the handler says what it answered.
 */
export const failWith = <E extends { readonly _tag: string; readonly code: string | null }>(error: E): Effect.Effect<never, E> =>
  noteUsage((notes) => {
    notes.error = recordedErrorOf(error)
  }).pipe(Effect.andThen(Effect.fail(error)))

export const invalidRequest = (error: InvalidRequest) =>
  new BadRequest({ message: error.message, param: error.param, code: error.code })

export const modelNotFound = (error: ModelNotFound) =>
  new NotFound({
    message: `The model '${error.model}' does not exist. GET /v1/models lists the models this gateway serves.`,
    param: "model",
    code: "model_not_found"
  })

const utcTime = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z")

/** A key's own limit: the rpm as OpenAI's `rate_limit_exceeded`, the daily images as its `insufficient_quota`. */
export const keyLimitError = (error: KeyLimitExceeded) =>
  error.reason === "rate"
    ? new RateLimited({
        message: `Rate limit reached for this key: ${error.limit} requests per minute. Try again in ${Math.max(1, Math.ceil(error.retryAfterMs / 1000))} s.`,
        param: null,
        code: "rate_limit_exceeded",
        retryAfterSeconds: Math.max(1, Math.ceil(error.retryAfterMs / 1000)),
        retried: false
      })
    : new RateLimited({
        message: `You exceeded your current quota: this key may make ${error.limit} images a day (UTC), ${error.used} are used and this request asks for ${error.requested}. The quota resets at ${utcTime(error.resetsAt)}.`,
        param: error.requested > 1 ? "n" : null,
        code: INSUFFICIENT_QUOTA,
        retryAfterSeconds: Math.max(1, Math.ceil(error.retryAfterMs / 1000)),
        retried: false
      })

export const limiterUnavailable = (error: LimiterUnavailable) =>
  new UpstreamUnavailableNow({ message: error.message, param: null, code: LIMITS_UNAVAILABLE, retryAfterSeconds: 5 })

/** The `catchTags` cases of the key limits, for every handler that generates. */
export const limitFailures = {
  KeyLimitExceeded: (error: KeyLimitExceeded) => failWith(keyLimitError(error)),
  LimiterUnavailable: (error: LimiterUnavailable) => failWith(limiterUnavailable(error))
}

const tries = (attempts: number) => (attempts === 1 ? "1 attempt" : `${attempts} attempts`)
const withDetail = (text: string, detail: string | null) => (detail === null ? `${text}.` : `${text}: ${detail}`)

const seconds = (ms: number | null, fallback: number) => Math.min(60, Math.max(1, Math.ceil((ms ?? fallback) / 1000)))

export type UpstreamHttpError = BadRequest | RateLimited | UpstreamFailed | UpstreamTimedOut | UpstreamUnavailableNow

export const upstreamError = (error: UpstreamError): UpstreamHttpError => {
  const { reason, attempts } = error
  switch (reason._tag) {
    case "UpstreamTimeout":
      return new UpstreamTimedOut({
        message: `${reason.timeoutMs === null ? "The upstream timed out while generating the image" : `The upstream did not produce an image within ${reason.timeoutMs} ms`}. The generation was not retried, since each try costs a full generation.`,
        param: null,
        code: "upstream_timeout"
      })
    case "UpstreamCircuitOpen": {
      const wait = seconds(reason.retryAfterMs, 1000)
      return new UpstreamUnavailableNow({
        message: `The upstream is unavailable after repeated failures, and no fallback model could serve the request. Try again in ${wait} s.`,
        param: null,
        code: "upstream_unavailable",
        retryAfterSeconds: wait
      })
    }
    case "UpstreamUnavailable":
      if (reason.status === 429) {
        const wait = seconds(reason.retryAfterMs, 10_000)
        return new RateLimited({
          message: `The upstream is rate limiting requests (after ${tries(attempts)}). Try again in ${wait} s.`,
          param: null,
          code: "rate_limit_exceeded",
          retryAfterSeconds: wait,
          retried: attempts > 1
        })
      }
      return new UpstreamFailed({
        message: withDetail(
          `The upstream is unavailable (${reason.status === null ? "network error" : `HTTP ${reason.status}`}) after ${tries(attempts)}`,
          reason.detail
        ),
        param: null,
        code: "upstream_error"
      })
    case "UpstreamRejected":
      // The request itself (a prompt the upstream refuses, a content policy): the client can change it.
      if (reason.status === 400 || reason.status === 422) {
        return new BadRequest({
          message: withDetail(`The upstream rejected the request (HTTP ${reason.status})`, reason.detail),
          param: reason.param ?? "prompt",
          code: "upstream_rejected"
        })
      }
      if (reason.status === 429) {
        return new RateLimited({
          message: withDetail("The upstream refused the request for its quota", reason.detail),
          param: null,
          code: "rate_limit_exceeded",
          retryAfterSeconds: 60,
          retried: false
        })
      }
      // 401, 403, 404: the gateway's configuration of that upstream is wrong, not the client's request.
      return new UpstreamFailed({
        message: withDetail(
          `The upstream refused the gateway (HTTP ${reason.status}); its configuration needs the operator's attention`,
          reason.detail
        ),
        param: null,
        code:
          reason.status === 401 || reason.status === 403 || reason.status === 404 ? "upstream_misconfigured" : "upstream_error"
      })
    case "UpstreamMalformed":
      return new UpstreamFailed({
        message: `The upstream answered without a usable image (${reason.detail}).`,
        param: null,
        code: "upstream_error"
      })
  }
}

const STATUS: Record<UpstreamHttpError["_tag"], number> = {
  BadRequest: 400,
  RateLimited: 429,
  UpstreamFailed: 502,
  UpstreamTimedOut: 504,
  UpstreamUnavailableNow: 503
}

/**
 * The status and OpenAI body a client would have received for an upstream
 * failure, for the places that report it in-band: a stream that has already
 * started, a probe's result, a usage record.
 */
export const upstreamOutcome = (error: UpstreamError): { readonly status: number; readonly body: ErrorBody } => {
  const http = upstreamError(error)
  return { status: STATUS[http._tag], body: errorBody(WIRE_TYPES[http._tag], http.message, http.param, http.code) }
}
