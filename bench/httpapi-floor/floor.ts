/**
 * A reference point for `npm run bench`, between the passthrough and the
 * gateway: the gateway's b64_json path written as one bare Effect HttpApi
 * endpoint, streamed as the gateway streams it. The request is decoded with
 * the gateway's own schema, the upstream is called with `fetch`, the image is
 * passed through into OpenAI's shape with the gateway's own `openImageValue`
 * (its first bytes read, the rest read and written chunk by chunk). No
 * middleware, authentication, retries, timeouts, services or statistics: its
 * CPU next to the passthrough's is what the framework and the reshaping cost
 * by themselves.
 *
 * With `FLOOR_MODE=pipe` the same endpoint hands the upstream's body on
 * untouched through the runtime's own pipe: no byte passes through JavaScript,
 * as in the passthrough. What it costs is the framework's share alone; the
 * difference to the default mode is the share of reading and writing the
 * image in JavaScript.
 */
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as Layer from "effect/Layer"
import * as References from "effect/References"
import { ImageGenerationRequest } from "../../src/domain/ImageGeneration.ts"
import { makePipe, openImageValue } from "../../src/domain/ImageTail.ts"

const Api = HttpApi.make("floor").add(
  HttpApiGroup.make("images").add(HttpApiEndpoint.post("generate", "/v1/images/generations", { payload: ImageGenerationRequest }))
)

const encoder = new TextEncoder()
const limits = { maxBytes: 32 * 1024 * 1024, timeoutMs: 60_000 }

export interface FloorSettings {
  readonly UPSTREAM_URL: string
  readonly FLOOR_MODE?: string | undefined
}

/** The floor's fetch handler. Built apart from the Worker's entry so that `BENCH_ONLY=js` can run it in Node. */
export const makeFloorHandler = (settings: FloorSettings): ((request: Request) => Promise<Response>) => {
  const upstreamUrl = new URL("/api/generate-images", settings.UPSTREAM_URL)
  const nativePipe = settings.FLOOR_MODE === "pipe"

  const generate = async (prompt: string) => {
    const upstream = await fetch(upstreamUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt, provider: "replicate", modelId: "black-forest-labs/flux-schnell" })
    })
    if (upstream.body === null) return HttpServerResponse.text("no image", { status: 502 })
    if (nativePipe) {
      const pipe = makePipe()
      void upstream.body.pipeTo(pipe.writable).catch(() => {})
      return HttpServerResponse.raw(pipe.readable, { contentType: "application/json" })
    }
    const opened = await openImageValue(upstream.body, "image", limits)
    if (opened._tag !== "Open") return HttpServerResponse.text("no image", { status: 502 })
    const created = Math.floor(Date.now() / 1000)
    const body = opened.tail.frame(
      [encoder.encode(`{"created":${created},"data":[{"b64_json":"`), opened.head],
      encoder.encode(`"}],"output_format":"png"}`)
    )
    return HttpServerResponse.raw(body, { contentType: "application/json" })
  }

  const ImagesLive = HttpApiBuilder.group(Api, "images", (handlers) =>
    handlers.handle("generate", ({ payload }) => Effect.promise(() => generate(payload.prompt)))
  )

  // Tracing off and no access log, as in the gateway: the cheapest settings the framework offers.
  const app = HttpRouter.toWebHandler(
    Layer.mergeAll(
      HttpApiBuilder.layer(Api).pipe(Layer.provide(ImagesLive)),
      Layer.succeed(References.TracerEnabled, false)
    ).pipe(Layer.provide(HttpServer.layerServices)),
    { disableLogger: true }
  )

  return (request) => app.handler(request)
}
