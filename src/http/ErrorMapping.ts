import type { InvalidRequest, ModelNotFound, UpstreamError } from "../domain/Errors.ts"
import { BadRequest, type ErrorBody, errorBody, NotFound, RateLimited, UpstreamFailed, UpstreamTimedOut } from "./ApiErrors.ts"

/** Domain errors to their HTTP form. The only place that decides which status an upstream failure becomes. */

export const invalidRequest = (error: InvalidRequest) =>
  new BadRequest({ message: error.message, param: error.param, code: error.code })

export const modelNotFound = (error: ModelNotFound) =>
  new NotFound({
    message: `The model '${error.model}' does not exist. GET /v1/models lists the models this gateway serves.`,
    param: "model",
    code: "model_not_found"
  })

const tries = (attempts: number) => (attempts === 1 ? "1 attempt" : `${attempts} attempts`)
const withDetail = (text: string, detail: string | null) => (detail === null ? `${text}.` : `${text}: ${detail}`)

export const upstreamError = (error: UpstreamError): RateLimited | UpstreamFailed | UpstreamTimedOut => {
  const { reason, attempts } = error
  switch (reason._tag) {
    case "UpstreamTimeout":
      return new UpstreamTimedOut({
        message: `The upstream did not produce an image within ${reason.timeoutMs} ms. The generation was not retried, since each try costs a full generation.`,
        param: null,
        code: "upstream_timeout"
      })
    case "UpstreamUnavailable":
      if (reason.status === 429) {
        const seconds = Math.min(60, Math.max(1, Math.ceil((reason.retryAfterMs ?? 10_000) / 1000)))
        return new RateLimited({
          message: `The upstream is rate limiting requests (after ${tries(attempts)}). Try again in ${seconds} s.`,
          param: null,
          code: "rate_limit_exceeded",
          retryAfterSeconds: seconds
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
      return new UpstreamFailed({
        message: withDetail(`The upstream rejected the request (HTTP ${reason.status})`, reason.detail),
        param: null,
        code: "upstream_error"
      })
    case "UpstreamMalformed":
      return new UpstreamFailed({
        message: `The upstream answered without a usable image (${reason.detail}).`,
        param: null,
        code: "upstream_error"
      })
  }
}

/**
 * The status and OpenAI body a client would have received for an upstream
 * failure, for the places that report it in-band: a stream that has already
 * started, a probe's result, a usage record.
 */
export const upstreamOutcome = (error: UpstreamError): { readonly status: number; readonly body: ErrorBody } => {
  const http = upstreamError(error)
  const rateLimited = http._tag === "RateLimited"
  return {
    status: rateLimited ? 429 : http._tag === "UpstreamTimedOut" ? 504 : 502,
    body: errorBody(rateLimited ? "rate_limit_error" : "upstream_error", http.message, http.param, http.code)
  }
}
