import { ConfigProvider, Effect, Layer, Logger, References } from "effect"
import { HttpClient, HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import type { GatewayMisconfigured } from "../domain/Errors.ts"
import type { UsageStatsObject } from "../durable/UsageStatsObject.ts"
import { AiSdkUpstream } from "../services/AiSdkUpstream.ts"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { GenerationCache } from "../services/GenerationCache.ts"
import { ImageGenerator } from "../services/ImageGenerator.ts"
import { ImageStore } from "../services/ImageStore.ts"
import { LocalPreview } from "../services/LocalPreview.ts"
import { ModelRegistry } from "../services/ModelRegistry.ts"
import { UsageStats } from "../services/UsageStats.ts"
import { Api } from "./Api.ts"
import { errorBody } from "./ApiErrors.ts"
import { AuthorizationLive } from "./AuthorizationLive.ts"
import { ChatHttp } from "./ChatHttp.ts"
import { EdgeMiddleware } from "./Edge.ts"
import { GatewayHttp } from "./GatewayHttp.ts"
import { HostedImagesHttp } from "./HostedImagesHttp.ts"
import { ImagesHttp } from "./ImagesHttp.ts"
import { ModelsHttp } from "./ModelsHttp.ts"
import { RequestValidationLive } from "./RequestValidationLive.ts"
import { SystemHttp } from "./SystemHttp.ts"

/** Bindings that are objects, not configuration strings. */
export interface Bindings {
  readonly images?: R2Bucket | undefined
  readonly usage?: DurableObjectNamespace<UsageStatsObject> | undefined
}

const services = (bindings: Bindings) =>
  ImageGenerator.layerNoDeps.pipe(
    Layer.provideMerge(ModelRegistry.layerNoDeps),
    Layer.provideMerge(GenerationCache.layer(bindings.images)),
    Layer.provideMerge(ImageStore.layer(bindings.images)),
    Layer.provide([AiSdkUpstream.layer, LocalPreview.layer])
  )

const apiRoutes = (bindings: Bindings) =>
  Layer.mergeAll(
    HttpApiBuilder.layer(Api, { openapiPath: "/openapi.json" }).pipe(
      Layer.provide([ImagesHttp, ChatHttp, ModelsHttp, GatewayHttp, SystemHttp]),
      Layer.provide([AuthorizationLive, RequestValidationLive])
    ),
    HostedImagesHttp
  ).pipe(Layer.provide(services(bindings)))

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

// One UsageStats for the edge (which records) and the cockpit's handlers (which read): one write buffer per isolate.
const gateway = (bindings: Bindings) =>
  Layer.mergeAll(apiRoutes(bindings), EdgeMiddleware, LogLevelFromConfig, TracingOff, JsonLogs).pipe(
    Layer.provide(UsageStats.layer(bindings.usage)),
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
  gateway(bindings).pipe(
    Layer.catchTag("GatewayMisconfigured", Misconfigured),
    Layer.provide(HttpServer.layerServices),
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
      Effect.provide(ImageStore.layer(bindings.images).pipe(Layer.provide(GatewayConfig.layer))),
      Effect.provide(UsageStats.layer(bindings.usage)),
      Effect.provide(ConfigProvider.layer(provider)),
      Effect.catch((error) => Effect.logError("scheduled cleanup could not start", error).pipe(Effect.as(0))),
      Effect.provide(JsonLogs)
    )
  )
