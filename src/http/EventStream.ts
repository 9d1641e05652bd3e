import * as Effect from "effect/Effect"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type { UpstreamError } from "../domain/Errors.ts"
import { type GeneratedImage, mimeTypeOf } from "../domain/ImageFormat.ts"
import { formatSize, parseSize } from "../domain/ImageSize.ts"
import type { ImageStream } from "../services/ImageGenerator.ts"
import { upstreamOutcome } from "./ErrorMapping.ts"
import type { ImageHost } from "./HostedUrls.ts"

/**
 * Server-sent events for the two streaming endpoints. Frames are written as
 * byte parts so that a 1-3 MB image goes out as the upstream's own bytes.
 * Chat streams use bare `data:` lines (OpenAI chat framing); image streams use
 * named `image_generation.*` (or `image_edit.*`) events. Both send `: keep-alive` comments while
 * the upstream works, which every SSE parser ignores.
 */

const encoder = new TextEncoder()
const text = (value: string) => encoder.encode(value)
type Frame = ReadonlyArray<Uint8Array>

const KEEP_ALIVE: Frame = [text(": keep-alive\n\n")]
const DONE: Frame = [text("data: [DONE]\n\n")]

/** An SSE response: headers at once, frames as they come, keep-alives in between, ended when `frames` ends. */
export const eventStreamResponse = (frames: Stream.Stream<Frame>, keepAliveMs: number) => {
  const keepAlive = Stream.fromSchedule(Schedule.spaced(keepAliveMs)).pipe(Stream.map(() => KEEP_ALIVE))
  const body = Stream.merge(frames, keepAlive, { haltStrategy: "left" }).pipe(
    Stream.flatMap((frame) => Stream.fromIterable(frame))
  )
  return HttpServerResponse.stream(body, {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
  })
}

export interface ChatStreamOptions {
  readonly id: string
  readonly model: string
  readonly includeUsage: boolean
  readonly progress: string | undefined
  /** Hosts each image and gives its URL; without it (or when it declines) images are data URLs. */
  readonly host: ImageHost | undefined
}

/** A string's content as it appears inside a JSON string, without the quotes. */
export const jsonText = (value: string) => JSON.stringify(value).slice(1, -1)

/** The end of a chat reply whose images partly failed, streamed or not: how many failed, and why (the first failure). */
export const partialFailureNote = (failed: number, requested: number, failure: UpstreamError | undefined) =>
  `\n\n(${failed} of ${requested} images failed${failure === undefined ? "" : `: ${upstreamOutcome(failure).body.error.message}`})`

/**
 * `![image N](...)` as JSON string content, for chat replies streamed or not:
 * the hosted URL when there is one, else a data URL whose base64 is the image's own bytes.
 */
export const markdownImage = (
  number: number,
  image: GeneratedImage,
  hosted: Option.Option<string>
): Array<string | Uint8Array> =>
  Option.isSome(hosted)
    ? [`![image ${number}](${jsonText(hosted.value)})`]
    : [`![image ${number}](data:${mimeTypeOf(image.format)};base64,`, image.base64, ")"]

const USAGE = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }

/** Splits a chunk's JSON around its content so the content can be written as bytes. */
const CONTENT_MARK = "@@content@@"

export const chatFrames = (images: ImageStream, options: ChatStreamOptions): Stream.Stream<Frame> => {
  const chunk = (delta: Record<string, unknown>, finishReason: string | null, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      id: options.id,
      object: "chat.completion.chunk",
      created: images.created,
      model: options.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      ...(options.includeUsage ? { usage: null } : {}),
      ...extra
    })
  const frame = (json: string): Frame => [text(`data: ${json}\n\n`)]
  const content = (value: string) => frame(chunk({ content: value }, null))
  const [imageHead = "", imageTail = ""] = chunk({ content: CONTENT_MARK }, null).split(CONTENT_MARK)

  let index = 0
  const failures: Array<UpstreamError> = []
  const head = Stream.fromIterable<Frame>([
    frame(chunk({ role: "assistant", content: "" }, null)),
    ...(options.progress === undefined ? [] : [content(options.progress)])
  ])
  const body = images.results.pipe(
    Stream.mapEffect((result) => {
      if (Result.isFailure(result)) {
        failures.push(result.failure)
        return Effect.succeed<ReadonlyArray<Frame>>([])
      }
      index++
      const number = index
      const image = result.success
      const separator = number > 1 || options.progress !== undefined ? "\\n\\n" : ""
      return (options.host === undefined ? Effect.succeed(Option.none<string>()) : options.host(image)).pipe(
        Effect.map(
          (hosted): ReadonlyArray<Frame> => [
            [`data: ${imageHead}${separator}`, ...markdownImage(number, image, hosted), `${imageTail}\n\n`].map((part) =>
              typeof part === "string" ? text(part) : part
            )
          ]
        )
      )
    }),
    Stream.flatMap((frames) => Stream.fromIterable(frames))
  )
  const tail = Stream.suspend(() => {
    const frames: Array<Frame> = []
    const first = failures[0]
    if (first !== undefined) {
      const error = upstreamOutcome(first).body
      frames.push(
        content(
          index === 0
            ? `${options.progress === undefined ? "" : "\n\n"}Image generation failed: ${error.error.message}`
            : partialFailureNote(failures.length, index + failures.length, first)
        )
      )
      if (index === 0) {
        frames.push(frame(JSON.stringify(error)), DONE)
        return Stream.fromIterable(frames)
      }
    }
    frames.push(frame(chunk({}, "stop")))
    if (options.includeUsage) {
      frames.push(
        frame(
          JSON.stringify({
            id: options.id,
            object: "chat.completion.chunk",
            created: images.created,
            model: options.model,
            choices: [],
            usage: USAGE
          })
        )
      )
    }
    frames.push(DONE)
    return Stream.fromIterable(frames)
  })
  return Stream.concat(Stream.concat(head, body), tail)
}

/**
 * `image_generation.completed` events (`image_edit.completed` for an edit), one per image as it finishes; an
 * `error` event if none succeeded.
 */
export const imageFrames = (
  images: ImageStream,
  requestedSize: string | null | undefined,
  kind: "image_generation" | "image_edit" = "image_generation"
): Stream.Stream<Frame> => {
  const size = formatSize(parseSize(requestedSize))
  const eventSize = ["1024x1024", "1024x1536", "1536x1024"].includes(size) ? size : "auto"
  let succeeded = 0
  let firstFailure: UpstreamError | undefined
  const completed = images.results.pipe(
    Stream.flatMap((result) => {
      if (Result.isFailure(result)) {
        firstFailure ??= result.failure
        return Stream.empty
      }
      succeeded++
      const image = result.success
      const tail = JSON.stringify({
        created_at: images.created,
        size: eventSize,
        quality: "auto",
        background: "auto",
        output_format: image.format,
        usage: { total_tokens: 0, input_tokens: 0, output_tokens: 0, input_tokens_details: { text_tokens: 0, image_tokens: 0 } }
      }).slice(1)
      return Stream.succeed<Frame>([
        text(`event: ${kind}.completed\ndata: {"type":"${kind}.completed","b64_json":"`),
        image.base64,
        text(`",${tail}\n\n`)
      ])
    })
  )
  const tail = Stream.suspend(() =>
    succeeded === 0 && firstFailure !== undefined
      ? Stream.succeed<Frame>([
          text(`event: error\ndata: ${JSON.stringify({ type: "error", ...upstreamOutcome(firstFailure).body })}\n\n`)
        ])
      : Stream.empty
  )
  return Stream.concat(completed, tail)
}

export const progressLine = (n: number, model: string) => `Generating ${n === 1 ? "an image" : `${n} images`} with ${model}...`

export const chatCompletionId = Effect.sync(() => `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`)
