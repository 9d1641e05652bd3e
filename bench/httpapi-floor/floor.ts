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
 * but the Worker builds its own answer instead of returning the upstream's.
 * `FLOOR_MODE=bare` and `bare-pipe` do the same two without the framework: a
 * plain fetch handler that parses the request with `JSON.parse`. Side by side,
 * the four split the floor's cost above the passthrough into a Worker making
 * its own body at all, reading and writing the image in JavaScript, and the
 * framework.
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
  const mode = settings.FLOOR_MODE ?? ""
  const nativePipe = mode === "pipe" || mode === "bare-pipe"

  /** The answer's JSON body as a stream, or `undefined` when the upstream gave no image. */
  const generate = async (prompt: string): Promise<ReadableStream<Uint8Array> | undefined> => {
    const upstream = await fetch(upstreamUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt, provider: "replicate", modelId: "black-forest-labs/flux-schnell" })
    })
    if (upstream.body === null) return undefined
    if (nativePipe) {
      const pipe = makePipe()
      void upstream.body.pipeTo(pipe.writable).catch(() => {})
      return pipe.readable
    }
    const opened = await openImageValue(upstream.body, "image", limits)
    if (opened._tag !== "Open") return undefined
    const created = Math.floor(Date.now() / 1000)
    return opened.tail.frame(
      [encoder.encode(`{"created":${created},"data":[{"b64_json":"`), opened.head],
      encoder.encode(`"}],"output_format":"png"}`)
    )
  }

  if (mode.startsWith("bare")) {
    return async (request) => {
      const { prompt } = (await request.json()) as { readonly prompt: string }
      const body = await generate(prompt)
      return body === undefined
        ? new Response("no image", { status: 502 })
        : new Response(body, { headers: { "content-type": "application/json" } })
    }
  }

  const ImagesLive = HttpApiBuilder.group(Api, "images", (handlers) =>
    handlers.handle("generate", ({ payload }) =>
      Effect.promise(async () => {
        const body = await generate(payload.prompt)
        return body === undefined
          ? HttpServerResponse.text("no image", { status: 502 })
          : HttpServerResponse.raw(body, { contentType: "application/json" })
      })
    )
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
