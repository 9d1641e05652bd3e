import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as HttpServerError from "effect/http/HttpServerError"
import type * as HttpServerRequest from "effect/http/HttpServerRequest"
import { errorResponse, pathOf } from "./Responses.ts"
import { allowedMethods } from "./Routes.ts"

const isRouteNotFound = (error: unknown) => HttpServerError.isHttpServerError(error) && error.reason._tag === "RouteNotFound"

/**
 * The answer for a failure that left the handlers unanswered: the router's "no route" as a 405 (with
 * `Allow`) or a 404, anything else as a logged 500. Always in OpenAI's shape.
 */
export const answerFailure = (request: HttpServerRequest.HttpServerRequest, cause: Cause.Cause<unknown>) => {
  const failure = Cause.findErrorOption(cause)
  if (failure._tag === "Some" && isRouteNotFound(failure.value)) {
    const path = pathOf(request.url)
    const allowed = allowedMethods(path)
    if (allowed.length > 0) {
      return Effect.succeed(
        errorResponse(
          405,
          "invalid_request_error",
          `Method ${request.method} is not allowed on ${path}. Use ${allowed.join(", ")}.`,
          "method_not_allowed",
          { allow: [...allowed, "OPTIONS"].join(", ") }
        )
      )
    }
    return Effect.succeed(
      errorResponse(404, "invalid_request_error", `Unknown request URL: ${request.method} ${path}.`, "unknown_url")
    )
  }
  return Effect.logError("unhandled failure", cause).pipe(
    Effect.as(
      errorResponse(500, "server_error", "The gateway failed unexpectedly while handling this request.", "internal_error", {
        "x-should-retry": "false"
      })
    )
  )
}
