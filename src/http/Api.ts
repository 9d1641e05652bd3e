import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { ChatCompletion, ChatCompletionRequest } from "../domain/Chat.ts"
import { ImageGenerationRequest, ImagesResponse } from "../domain/ImageGeneration.ts"
import { ModelList, ModelObject } from "../domain/Model.ts"
import { BadRequestWire, NotFoundWire, RateLimitedWire, UpstreamFailedWire, UpstreamTimedOutWire } from "./ApiErrors.ts"
import { Authorization, RequestValidation } from "./Middleware.ts"

/** `x-images-failed`: how many of the `n` images failed when the others succeeded. */
export const ImagesResponseWithHeaders = HttpApiSchema.WithHeaders(ImagesResponse, {
  "x-images-failed": Schema.optional(Schema.String)
})

export class ImagesApiGroup extends HttpApiGroup.make("images")
  .add(
    HttpApiEndpoint.post("generate", "/images/generations", {
      payload: ImageGenerationRequest,
      success: ImagesResponseWithHeaders,
      error: [NotFoundWire, RateLimitedWire, UpstreamFailedWire, UpstreamTimedOutWire]
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Create images",
        description: "OpenAI-compatible image generation. Each of the `n` images is one upstream call; they run concurrently."
      })
    )
  )
  .middleware(RequestValidation)
  .middleware(Authorization)
  .prefix("/v1") {}

export class ChatApiGroup extends HttpApiGroup.make("chat")
  .add(
    HttpApiEndpoint.post("completions", "/chat/completions", {
      payload: ChatCompletionRequest,
      success: ChatCompletion,
      error: [BadRequestWire, NotFoundWire, RateLimitedWire, UpstreamFailedWire, UpstreamTimedOutWire]
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Chat completions that answer with images",
        description:
          "The last user message is the prompt (trailing `--ar 16:9`, `--size 1792x1024`, `--n 2` set the options); the reply is markdown with one image per line. With `stream: true` the answer is `text/event-stream` of `chat.completion.chunk` objects: a progress line, keep-alive comments while the upstream works, the images, then `[DONE]`."
      })
    )
  )
  .middleware(RequestValidation)
  .middleware(Authorization)
  .prefix("/v1") {}

export class ModelsApiGroup extends HttpApiGroup.make("models")
  .add(HttpApiEndpoint.get("list", "/models", { success: ModelList }))
  .add(
    HttpApiEndpoint.get("retrieve", "/models/:id", {
      params: { id: Schema.String },
      success: ModelObject,
      error: NotFoundWire
    })
  )
  .add(
    // Public ids contain a slash (`replicate/flux-schnell`); SDKs encode it, curl users often do not.
    HttpApiEndpoint.get("retrieveByProvider", "/models/:provider/:name", {
      params: { provider: Schema.String, name: Schema.String },
      success: ModelObject,
      error: NotFoundWire
    }).annotate(OpenApi.Exclude, true)
  )
  .middleware(RequestValidation)
  .middleware(Authorization)
  .prefix("/v1") {}

export const VERSION = "0.1.0"

/** Liveness without a key: says the Worker runs and its configuration loaded, nothing secret. */
export class SystemApiGroup extends HttpApiGroup.make("system").add(
  HttpApiEndpoint.get("health", "/health", {
    success: Schema.Struct({ status: Schema.Literal("ok"), version: Schema.String, models: Schema.Int })
  })
) {}

export class Api extends HttpApi.make("ai-image-gateway")
  .add(ImagesApiGroup)
  .add(ChatApiGroup)
  .add(ModelsApiGroup)
  .add(SystemApiGroup)
  .annotateMerge(
    OpenApi.annotations({
      title: "ai-image-gateway",
      description: "OpenAI-compatible image generation gateway on Cloudflare Workers.",
      version: VERSION
    })
  ) {}
