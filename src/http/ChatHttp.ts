import * as Effect from "effect/Effect"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { type ChatCompletionRequest, chatPrompt } from "../domain/Chat.ts"
import { InvalidRequest } from "../domain/Errors.ts"
import { ImageGenerationRequest } from "../domain/ImageGeneration.ts"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { type GenerationResult, ImageGenerator } from "../services/ImageGenerator.ts"
import { ImageInputs } from "../services/ImageInputs.ts"
import { ImageStore } from "../services/ImageStore.ts"
import { Api } from "./Api.ts"
import { failWith, invalidRequest, limitFailures, modelNotFound, upstreamError } from "./ErrorMapping.ts"
import {
  chatCompletionId,
  chatFrames,
  eventStreamResponse,
  jsonText,
  markdownImage,
  partialFailureNote,
  progressLine
} from "./EventStream.ts"
import { imageHostFor, publicOrigin } from "./HostedUrls.ts"

const decodeImageRequest = Schema.decodeUnknownEffect(ImageGenerationRequest)

/** The chat message turned into an image request, validated like the images endpoint. */
const toImageRequest = (payload: ChatCompletionRequest) =>
  Effect.gen(function* () {
    const parsed = chatPrompt(payload.messages)
    if (parsed instanceof InvalidRequest) return yield* parsed
    const request = yield* decodeImageRequest({
      prompt: parsed.prompt,
      model: payload.model ?? null,
      n: parsed.n ?? null,
      size: parsed.size ?? null,
      response_format: "b64_json"
    }).pipe(
      Effect.mapError(
        () =>
          new InvalidRequest({
            message: "The prompt in 'messages' is longer than 32000 characters.",
            param: "messages",
            code: "invalid_value"
          })
      )
    )
    return { request, references: parsed.referenceImages }
  })

/** `chat.completion` with the images as markdown, written as parts so the images are copied, not re-escaped. */
const completionBody = (
  id: string,
  model: string,
  result: GenerationResult,
  hosted: ReadonlyArray<Option.Option<string>>
): Blob => {
  const parts: Array<string | Uint8Array> = [
    `{"id":"${id}","object":"chat.completion","created":${result.created},"model":${JSON.stringify(model)},"choices":[{"index":0,"message":{"role":"assistant","content":"`
  ]
  result.images.forEach((image, i) => {
    parts.push(i === 0 ? "" : "\\n\\n", ...markdownImage(i + 1, image, hosted[i] ?? Option.none()))
  })
  if (result.failed > 0) {
    parts.push(jsonText(partialFailureNote(result.failed, result.failed + result.images.length, result.failure)))
  }
  parts.push(
    `","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}`
  )
  return new Blob(parts)
}

export const ChatHttp = HttpApiBuilder.group(
  Api,
  "chat",
  Effect.fn(function* (handlers) {
    const generator = yield* ImageGenerator
    const config = yield* GatewayConfig
    const store = yield* ImageStore
    const imageInputs = yield* ImageInputs
    return handlers.handle("completions", ({ payload }) =>
      Effect.gen(function* () {
        const { request, references } = yield* toImageRequest(payload)
        // Images pasted into the last user message make the reply an edit of them.
        const inputs = references.length === 0 ? undefined : yield* imageInputs.fromUrls(references, yield* publicOrigin(config))
        const id = yield* chatCompletionId
        const host = yield* imageHostFor(store, config)
        if (payload.stream === true) {
          // Everything that can fail before the first byte (flags, model, images) has failed by now; the rest is reported in the stream.
          const images = yield* generator.stream(request, { inputs })
          const model = payload.model ?? images.model.id
          return eventStreamResponse(
            chatFrames(images, {
              id,
              model,
              includeUsage: payload.stream_options?.include_usage === true,
              progress: config.chatProgress ? progressLine(request.n ?? 1, images.model.id) : undefined,
              host
            }),
            config.keepAliveMs
          )
        }
        const result = yield* inputs === undefined
          ? generator.generate(request, { asText: true })
          : generator.edit(request, inputs, { asText: true })
        const hosted = host === undefined ? [] : yield* Effect.forEach(result.images, host, { concurrency: "unbounded" })
        return HttpServerResponse.raw(completionBody(id, payload.model ?? result.model.id, result, hosted), {
          contentType: "application/json",
          headers: result.failed > 0 ? { "x-images-failed": String(result.failed) } : {}
        })
      }).pipe(
        Effect.catchTags({
          InvalidRequest: (error) => failWith(invalidRequest(error)),
          ModelNotFound: (error) => failWith(modelNotFound(error)),
          UpstreamError: (error) => failWith(upstreamError(error)),
          ...limitFailures
        })
      )
    )
  })
)
