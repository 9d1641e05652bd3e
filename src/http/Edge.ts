import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import { MAX_INPUT_IMAGES } from "../domain/ImageEdit.ts"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { KeyLimits } from "../services/KeyLimits.ts"
import { RequestUsage } from "../services/RequestUsage.ts"
import { UsageStats } from "../services/UsageStats.ts"
import { makeCors } from "./edge/Cors.ts"
import { answerFailure } from "./edge/Fallbacks.ts"
import { makeBodyCheck } from "./edge/RequestBody.ts"
import { pathOf } from "./edge/Responses.ts"
import { usageEndpoint } from "./edge/Routes.ts"
import { CLIENT_CLOSED, type Recorded, usageEvent } from "./edge/UsageEvents.ts"

/**
 * The one place every request passes. It gives each a request id and one log line, and composes the
 * concerns in `edge/`: CORS, the body check, the OpenAI-shaped answers for what HttpApi never sees
 * (unknown routes, wrong methods, unexpected defects), and the usage record after the answer.
 */
export const EdgeMiddleware = HttpRouter.middleware(
  Effect.gen(function* () {
    const config = yield* GatewayConfig
    const usage = yield* UsageStats
    const limits = yield* KeyLimits
    const cors = makeCors(config.corsOrigins)
    // An edit's body: up to 16 images and a mask (as base64 in JSON, a third more), plus its fields.
    const checkBody = makeBodyCheck(
      config.maxBodyBytes,
      Math.ceil(((MAX_INPUT_IMAGES + 1) * config.maxImageBytes * 4) / 3) + config.maxBodyBytes
    )

    return (httpEffect) =>
      Effect.suspend(() => {
        const requestId = `req_${crypto.randomUUID().replaceAll("-", "")}`
        return handle(httpEffect, requestId).pipe(Effect.annotateLogs({ requestId }))
      })

    function handle<E>(
      httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, HttpServerRequest.HttpServerRequest>,
      requestId: string
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, E, HttpServerRequest.HttpServerRequest> {
      // Every failure is answered here; E stays in the type only because the router's middleware contract asks for it.
      return Effect.gen(function* () {
        const started = yield* Clock.currentTimeMillis
        const original = yield* HttpServerRequest.HttpServerRequest
        const notes = RequestUsage.make()
        const path = pathOf(original.url)
        const endpoint = usageEndpoint(original.method, path)
        const recorded: Recorded | undefined =
          endpoint === undefined ? undefined : { request: original, path, endpoint, requestId, started }
        const corsHeaders = cors.headers(original.headers.origin)
        let response: HttpServerResponse.HttpServerResponse
        if (original.method === "OPTIONS") {
          response = cors.preflight(corsHeaders, original.headers["access-control-request-headers"])
        } else {
          const prechecked = checkBody(original)
          const checked = Effect.isEffect(prechecked) ? yield* prechecked : prechecked
          if (checked !== undefined && "response" in checked) {
            response = checked.response
            notes.error = checked.error
          } else {
            const request = checked?.request ?? original
            const handler =
              request === original ? httpEffect : Effect.provideService(httpEffect, HttpServerRequest.HttpServerRequest, request)
            response = yield* handler.pipe(
              Effect.provideService(RequestUsage, notes),
              Effect.catchCause((cause) =>
                // A client that went away: let the runtime end the request as it does.
                Cause.hasInterruptsOnly(cause)
                  ? Effect.failCause(cause as Cause.Cause<never>)
                  : Effect.map(answerFailure(request, cause), (answer) => {
                      notes.error = answer.error
                      return answer.response
                    })
              ),
              Effect.onInterrupt(() => {
                if (recorded === undefined) return Effect.void
                notes.clientClosed = true
                const closed = HttpServerResponse.empty({ status: CLIENT_CLOSED.status })
                return Effect.andThen(
                  usage.record(undefined, (now) => usageEvent(recorded, closed, notes, config.logPrompts, now)),
                  limits.settle(notes)
                )
              })
            )
          }
        }
        yield* Effect.logInfo("request", {
          method: original.method,
          path,
          status: response.status,
          latencyMs: (yield* Clock.currentTimeMillis) - started
        })
        if (recorded !== undefined) {
          yield* usage.record(notes.settled, (now) => usageEvent(recorded, response, notes, config.logPrompts, now))
        }
        // A key's images reserved for this request and not served go back to its quota once the answer has ended.
        yield* limits.settle(notes)
        return HttpServerResponse.setHeaders(response, { ...corsHeaders, "x-request-id": requestId })
      })
    }
  }),
  { global: true }
)
