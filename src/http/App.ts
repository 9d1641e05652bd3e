import { ConfigProvider, Effect, Layer, References } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import type { GatewayMisconfigured } from "../domain/Errors.ts"
import { AiSdkUpstream } from "../services/AiSdkUpstream.ts"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { ImageGenerator } from "../services/ImageGenerator.ts"
import { LocalPreview } from "../services/LocalPreview.ts"
import { ModelRegistry } from "../services/ModelRegistry.ts"
import { Api } from "./Api.ts"
import { errorBody } from "./ApiErrors.ts"
import { AuthorizationLive } from "./AuthorizationLive.ts"
import { ChatHttp } from "./ChatHttp.ts"
import { EdgeMiddleware } from "./Edge.ts"
import { ImagesHttp } from "./ImagesHttp.ts"
import { ModelsHttp } from "./ModelsHttp.ts"
import { RequestValidationLive } from "./RequestValidationLive.ts"
import { SystemHttp } from "./SystemHttp.ts"

const Services = ImageGenerator.layerNoDeps.pipe(
  Layer.provideMerge(ModelRegistry.layerNoDeps),
  Layer.provide([AiSdkUpstream.layer, LocalPreview.layer])
)

const ApiRoutes = HttpApiBuilder.layer(Api, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide([ImagesHttp, ChatHttp, ModelsHttp, SystemHttp]),
  Layer.provide([AuthorizationLive, RequestValidationLive]),
  Layer.provide(Services)
)

const LogLevelFromConfig = Layer.effect(
  References.MinimumLogLevel,
  Effect.gen(function* () {
    return (yield* GatewayConfig).logLevel
  })
)

const Gateway = Layer.mergeAll(ApiRoutes, EdgeMiddleware, LogLevelFromConfig).pipe(Layer.provide(GatewayConfig.layer))

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
export const makeApp = (provider: ConfigProvider.ConfigProvider) =>
  Gateway.pipe(
    Layer.catchTag("GatewayMisconfigured", Misconfigured),
    Layer.provide(HttpServer.layerServices),
    Layer.provide(ConfigProvider.layer(provider))
  )

/** A fetch handler for the gateway. The edge middleware logs one line per request, so the router's own access log is off. */
export const makeHandler = (provider: ConfigProvider.ConfigProvider) =>
  HttpRouter.toWebHandler(makeApp(provider), { disableLogger: true })
