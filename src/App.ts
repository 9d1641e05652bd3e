import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import type { GatewayMisconfigured } from "./domain/Errors.ts"
import { Api } from "./http/Api.ts"
import { errorBody } from "./http/ApiErrors.ts"
import { AdminOnlyLive, AuthorizationLive } from "./http/AuthorizationLive.ts"
import { ChatHttp } from "./http/ChatHttp.ts"
import { EdgeMiddleware } from "./http/Edge.ts"
import { EditsHttp } from "./http/EditsHttp.ts"
import { GatewayHttp } from "./http/GatewayHttp.ts"
import { HostedImagesHttp } from "./http/HostedImagesHttp.ts"
import { ImagesHttp } from "./http/ImagesHttp.ts"
import { KeyHttp } from "./http/KeyHttp.ts"
import { ModelsHttp } from "./http/ModelsHttp.ts"
import { RequestValidationLive } from "./http/RequestValidationLive.ts"
import { SystemHttp } from "./http/SystemHttp.ts"
import { CircuitBreaker } from "./services/CircuitBreaker.ts"
import { GatewayConfig } from "./services/GatewayConfig.ts"
import { GenerationCache } from "./services/GenerationCache.ts"
import { ImageGenerator } from "./services/ImageGenerator.ts"
import { ImageInputs } from "./services/ImageInputs.ts"
import { ImageStore } from "./services/ImageStore.ts"
import { KeyLimits } from "./services/KeyLimits.ts"
import { KeyReports } from "./services/KeyReports.ts"
import { ModelRegistry } from "./services/ModelRegistry.ts"
import { UpstreamRegistry } from "./services/UpstreamRegistry.ts"
import { UpstreamRouter } from "./services/UpstreamRouter.ts"
import { UsageStats } from "./services/UsageStats.ts"
import { type Bindings, WorkerBindings } from "./services/WorkerBindings.ts"

export type { Bindings } from "./services/WorkerBindings.ts"

/**
 * The services, each given what it needs from the ones below it: generation on the router, the
 * router on the catalogue, the circuits and the upstream instances; hosting and the cache on R2.
 */
const services = Layer.mergeAll(ImageGenerator.layerNoDeps, KeyReports.layer).pipe(
  Layer.provideMerge(KeyLimits.layer),
  Layer.provideMerge(UpstreamRouter.layerNoDeps),
  Layer.provideMerge(CircuitBreaker.layer),
  Layer.provideMerge(ModelRegistry.layerNoDeps),
  Layer.provideMerge(UpstreamRegistry.layer),
  Layer.provideMerge(GenerationCache.layer),
  Layer.provideMerge(ImageInputs.layer),
  Layer.provideMerge(ImageStore.layer)
)

const apiRoutes = Layer.mergeAll(
  HttpApiBuilder.layer(Api, { openapiPath: "/openapi.json" }).pipe(
    Layer.provide([ImagesHttp, EditsHttp, ChatHttp, ModelsHttp, GatewayHttp, KeyHttp, SystemHttp]),
    Layer.provide([AuthorizationLive, AdminOnlyLive, RequestValidationLive])
  ),
  HostedImagesHttp
).pipe(Layer.provide(services))

const LogLevelFromConfig = Layer.effect(
  References.MinimumLogLevel,
  Effect.gen(function* () {
    return (yield* GatewayConfig).logLevel
  })
)

/**
 * One JSON line per entry, at the console level of its Effect level (so `wrangler tail` and Workers Logs
 * see warnings and errors as such). Effect's default logger hands `console.log` a string plus objects for
 * the runtime to format: at the default LOG_LEVEL=Info that cost about 2 ms of CPU per request in workerd
 * (two lines), against about 0.5 ms for two JSON strings (see Performance in the README).
 */
const JsonLogs = Logger.layer([Logger.withLeveledConsole(Logger.formatJson)])

/**
 * No spans: nothing exports Effect traces from the Worker (Workers Observability
 * reads the logs), and a span per request, handler and upstream call, with its
 * clock reads and trace headers, is a measurable share of the per-request CPU.
 * For the same reason, functions on the per-request path are `Effect.fnUntraced`:
 * `Effect.fn` captures a stack trace on every call, for a span nobody reads.
 */
const TracingOff = Layer.mergeAll(
  Layer.succeed(References.TracerEnabled, false),
  // Upstream calls then skip the client span entirely, and send no trace headers.
  Layer.succeed(HttpClient.TracerDisabledWhen, () => true)
)

// One UsageStats (and one KeyLimits) for the edge (which records) and the cockpit's handlers (which read): one write buffer per isolate.
const gateway = Layer.mergeAll(apiRoutes, EdgeMiddleware, LogLevelFromConfig, TracingOff, JsonLogs).pipe(
  Layer.provide(UsageStats.layer),
  Layer.provide(KeyLimits.layer),
  Layer.provide(GatewayConfig.layer)
)

/**
 * A configuration the gateway cannot run with still gets a Worker that
 * answers: every request receives the reason, in OpenAI's error shape,
 * instead of the isolate failing with an opaque 1101.
 */
const Misconfigured = (error: GatewayMisconfigured) =>
  HttpRouter.add(
    "*",
    "*",
    Effect.succeed(
      HttpServerResponse.jsonUnsafe(errorBody("server_error", error.message, null, "gateway_misconfigured"), {
        status: 500,
        headers: { "x-should-retry": "false" }
      })
    )
  )

/** The whole gateway as one layer, reading its configuration from `provider`. */
export const makeApp = (provider: ConfigProvider.ConfigProvider, bindings: Bindings = {}) =>
  gateway.pipe(
    Layer.catchTag("GatewayMisconfigured", Misconfigured),
    Layer.provide(HttpServer.layerServices),
    Layer.provide(WorkerBindings.layer(bindings)),
    Layer.provide(ConfigProvider.layer(provider))
  )

/** A fetch handler for the gateway. The edge middleware logs one line per request, so the router's own access log is off. */
export const makeHandler = (provider: ConfigProvider.ConfigProvider, bindings: Bindings = {}) =>
  HttpRouter.toWebHandler(makeApp(provider, bindings), { disableLogger: true })

/** The cron trigger's work: deleting expired hosted images and old statistics. Run at the edge of the program, once per event. */
export const runScheduled = (provider: ConfigProvider.ConfigProvider, bindings: Bindings) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const usage = yield* UsageStats
      if (usage.enabled) {
        yield* usage.prune.pipe(
          Effect.catch((error) => Effect.logWarning("usage statistics not pruned", { reason: error.message }))
        )
      }
      return yield* (yield* ImageStore).deleteExpired
    }).pipe(
      Effect.provide(Layer.mergeAll(ImageStore.layer.pipe(Layer.provide(GatewayConfig.layer)), UsageStats.layer)),
      Effect.provide(WorkerBindings.layer(bindings)),
      Effect.provide(ConfigProvider.layer(provider)),
      Effect.catch((error) => Effect.logError("scheduled cleanup could not start", error).pipe(Effect.as(0))),
      Effect.provide(JsonLogs)
    )
  )
