import * as Schema from "effect/Schema"
import { InvalidRequest } from "./Errors.ts"
import { MAX_IMAGES, MAX_PROMPT_LENGTH } from "./ImageGeneration.ts"
import { SIZE_PATTERN } from "./ImageSize.ts"

/** A content part; only `text` and `image_url` parts mean anything to an image model. */
export const ContentPart = Schema.Struct({
  type: Schema.String,
  text: Schema.optional(Schema.String),
  image_url: Schema.optional(Schema.Unknown)
})

export const ChatMessage = Schema.Struct({
  role: Schema.String,
  content: Schema.optional(Schema.NullOr(Schema.Union([Schema.String, Schema.Array(ContentPart)])))
})
export type ChatMessage = typeof ChatMessage.Type

/**
 * `POST /v1/chat/completions`. The chat-only fields clients send (temperature,
 * top_p, max_tokens, tools, user...) are accepted and ignored.
 */
export class ChatCompletionRequest extends Schema.Class<ChatCompletionRequest>("ChatCompletionRequest")({
  model: Schema.optional(Schema.NullOr(Schema.String)),
  messages: Schema.Array(ChatMessage).check(Schema.isMinLength(1, { message: "'messages' must hold at least one message" })),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  stream_options: Schema.optional(Schema.NullOr(Schema.Struct({ include_usage: Schema.optional(Schema.NullOr(Schema.Boolean)) })))
}) {}

export const ChatCompletion = Schema.Struct({
  id: Schema.String,
  object: Schema.Literal("chat.completion"),
  created: Schema.Int,
  model: Schema.String,
  choices: Schema.Array(
    Schema.Struct({
      index: Schema.Int,
      message: Schema.Struct({
        role: Schema.Literal("assistant"),
        content: Schema.NullOr(Schema.String),
        refusal: Schema.Null
      }),
      logprobs: Schema.Null,
      finish_reason: Schema.String
    })
  ),
  usage: Schema.Struct({ prompt_tokens: Schema.Int, completion_tokens: Schema.Int, total_tokens: Schema.Int })
})

export interface ChatPrompt {
  readonly prompt: string
  readonly n: number | undefined
  readonly size: string | undefined
  /** `image_url` parts of the last user message, kept for upstreams that take reference images. */
  readonly referenceImages: ReadonlyArray<string>
}

const noText = () =>
  new InvalidRequest({
    message: "The conversation has no user text to turn into an image: the last 'user' message needs text content.",
    param: "messages",
    code: null
  })

const badFlag = (message: string) => new InvalidRequest({ message, param: "messages", code: "invalid_value" })

/** The trailing `--flag value` pairs a user can type, since chat UIs have no size or count fields. */
const FLAGS = new Set(["--ar", "--size", "--n"])

/** Room for the trailing flags on top of the longest prompt: beyond it the text is refused before it is parsed. */
const MAX_FLAGS_LENGTH = 200

const isSpace = (char: string | undefined) => char !== undefined && /\s/.test(char)

/**
 * The last `--flag value` of `text` (already trimmed at the end), read backwards token by token: each
 * character is looked at a bounded number of times, so a message of any shape costs linear time
 * (an unanchored regular expression here backtracked quadratically over long runs of spaces).
 */
const lastFlag = (text: string): { readonly flag: string; readonly value: string; readonly start: number } | undefined => {
  let valueStart = text.length
  while (valueStart > 0 && !isSpace(text[valueStart - 1])) valueStart--
  let gap = valueStart
  while (gap > 0 && isSpace(text[gap - 1])) gap--
  if (gap === valueStart || valueStart === text.length) return undefined
  let flagStart = gap
  while (flagStart > 0 && !isSpace(text[flagStart - 1])) flagStart--
  const flag = text.slice(flagStart, gap).toLowerCase()
  return FLAGS.has(flag) ? { flag: flag.slice(2), value: text.slice(valueStart), start: flagStart } : undefined
}

/** `--ar 16:9` becomes a size with a 1024-pixel long side, so every upstream understands it. */
const sizeFromRatio = (value: string): string | InvalidRequest => {
  const match = /^(\d{1,3}):(\d{1,3})$/.exec(value)
  const w = Number(match?.[1])
  const h = Number(match?.[2])
  if (match === null || w === 0 || h === 0) return badFlag(`'--ar ${value}' is not an aspect ratio like 16:9.`)
  const scale = 1024 / Math.max(w, h)
  return `${Math.round(w * scale)}x${Math.round(h * scale)}`
}

/**
 * The prompt is the text of the last `user` message (a string, or the text
 * parts of a content array joined by newlines), without its trailing flags.
 */
export const chatPrompt = (messages: ReadonlyArray<ChatMessage>): ChatPrompt | InvalidRequest => {
  const last = [...messages].reverse().find((message) => message.role === "user")
  if (last === undefined || last.content === undefined || last.content === null) return noText()
  const parts = typeof last.content === "string" ? [{ type: "text", text: last.content }] : last.content
  const referenceImages = parts.flatMap((part) => {
    const url = (part.image_url as { url?: unknown } | undefined)?.url
    return part.type === "image_url" && typeof url === "string" ? [url] : []
  })
  const text = parts
    .filter((part) => part.type === "text" && typeof part.text === "string")
    .map((part) => part.text)
    .join("\n")
  if (text.length > MAX_PROMPT_LENGTH + MAX_FLAGS_LENGTH) {
    return new InvalidRequest({
      message: `The prompt in 'messages' is longer than ${MAX_PROMPT_LENGTH} characters.`,
      param: "messages",
      code: "invalid_value"
    })
  }
  let prompt = text.trim()
  let n: number | undefined
  let size: string | undefined
  for (let match = lastFlag(prompt); match !== undefined; match = lastFlag(prompt)) {
    const { flag, value } = match
    switch (flag) {
      case "n": {
        const count = Number(value)
        if (!Number.isInteger(count) || count < 1 || count > MAX_IMAGES) {
          return badFlag(`'--n ${value}' must be an integer from 1 to ${MAX_IMAGES}.`)
        }
        n ??= count
        break
      }
      case "size": {
        if (value !== "auto" && !SIZE_PATTERN.test(value))
          return badFlag(`'--size ${value}' must be WIDTHxHEIGHT, like 1024x1024, or auto.`)
        size ??= value
        break
      }
      case "ar": {
        const fromRatio = sizeFromRatio(value)
        if (fromRatio instanceof InvalidRequest) return fromRatio
        size ??= fromRatio
        break
      }
    }
    prompt = prompt.slice(0, match.start).trimEnd()
  }
  if (prompt === "") return noText()
  return { prompt, n, size, referenceImages }
}
