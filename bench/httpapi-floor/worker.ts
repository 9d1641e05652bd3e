/**
 * A reference point for `npm run bench`, between the passthrough and the
 * gateway: the gateway's b64_json path written as one bare Effect HttpApi
 * endpoint. The request is decoded with the gateway's own schema, the
 * upstream is called with `fetch`, the image is sliced out of its JSON with
 * the gateway's own `findTopLevelString` and answered in OpenAI's shape. No
 * middleware, authentication, retries, timeouts, services or statistics: its
 * CPU next to the passthrough's is what the framework costs by itself.
 */
import { env } from "cloudflare:workers"
import { Effect, Layer, References } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { ImageGenerationRequest } from "../../src/domain/ImageGeneration.ts"
import { findTopLevelString } from "../../src/domain/JsonBytes.ts"

const Api = HttpApi.make("floor").add(
  HttpApiGroup.make("images").add(HttpApiEndpoint.post("generate", "/v1/images/generations", { payload: ImageGenerationRequest }))
)

const upstreamUrl = new URL("/api/generate-images", (env as { UPSTREAM_URL: string }).UPSTREAM_URL)

const generate = async (prompt: string) => {
  const upstream = await fetch(upstreamUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt, provider: "replicate", modelId: "black-forest-labs/flux-schnell" })
  })
  const found = findTopLevelString(new Uint8Array(await upstream.arrayBuffer()), "image")
  if (found._tag !== "Found") return HttpServerResponse.text("no image", { status: 502 })
  const created = Math.floor(Date.now() / 1000)
  return HttpServerResponse.raw(new Blob([`{"created":${created},"data":[{"b64_json":"`, found.raw, `"}]}`]), {
    contentType: "application/json"
  })
}

const ImagesLive = HttpApiBuilder.group(Api, "images", (handlers) =>
  handlers.handle("generate", ({ payload }) => Effect.promise(() => generate(payload.prompt)))
)

// Tracing off and no access log, as in the gateway: the cheapest settings the framework offers.
const app = HttpRouter.toWebHandler(
  Layer.mergeAll(HttpApiBuilder.layer(Api).pipe(Layer.provide(ImagesLive)), Layer.succeed(References.TracerEnabled, false)).pipe(
    Layer.provide(HttpServer.layerServices)
  ),
  { disableLogger: true }
)

export default { fetch: (request) => app.handler(request) } satisfies ExportedHandler
