import * as Schema from "effect/Schema"
import { SIZE_PATTERN } from "./ImageSize.ts"

export const MAX_PROMPT_LENGTH = 32000
export const MAX_IMAGES = 10

const message = (text: string) => ({ message: text })

/** A nullable optional field: OpenAI marks most request fields nullable and clients do send `null`. */
const nullable = <S extends Schema.Top>(schema: S) => Schema.optional(Schema.NullOr(schema))

export const Prompt = Schema.String.check(
  Schema.isMinLength(1, message("'prompt' must be a non-empty string")),
  Schema.isMaxLength(MAX_PROMPT_LENGTH, message(`'prompt' must be at most ${MAX_PROMPT_LENGTH} characters`))
)

export const ImageCount = Schema.Int.check(
  Schema.isBetween({ minimum: 1, maximum: MAX_IMAGES }, message(`'n' must be an integer from 1 to ${MAX_IMAGES}`))
)

export const SizeParam = Schema.String.check(
  Schema.makeFilter(
    (size: string) => size === "auto" || SIZE_PATTERN.test(size),
    message("'size' must be 'WIDTHxHEIGHT' (for example '1024x1024') or 'auto'")
  )
)

export const ResponseFormat = Schema.Literals(["url", "b64_json"])
export type ResponseFormat = typeof ResponseFormat.Type

/**
 * `POST /v1/images/generations`. Every field of the OpenAI request is accepted;
 * unknown fields are ignored. Fields the upstream cannot honour (quality,
 * style, background...) are accepted as any string and not acted on.
 */
export class ImageGenerationRequest extends Schema.Class<ImageGenerationRequest>("ImageGenerationRequest")({
  prompt: Prompt,
  model: nullable(Schema.String),
  n: nullable(ImageCount),
  size: nullable(SizeParam),
  response_format: nullable(ResponseFormat),
  quality: nullable(Schema.String),
  style: nullable(Schema.String),
  background: nullable(Schema.String),
  moderation: nullable(Schema.String),
  output_format: nullable(Schema.String),
  output_compression: nullable(Schema.Number),
  stream: nullable(Schema.Boolean),
  partial_images: nullable(Schema.Int),
  user: nullable(Schema.String)
}) {}

export const OutputFormat = Schema.Literals(["png", "jpeg", "webp"])

export const ImageData = Schema.Struct({
  b64_json: Schema.optional(Schema.String),
  url: Schema.optional(Schema.String),
  revised_prompt: Schema.optional(Schema.String)
})

export const ImagesResponse = Schema.Struct({
  created: Schema.Int,
  data: Schema.Array(ImageData),
  output_format: Schema.optional(OutputFormat),
  /** Not OpenAI's: how many of the `n` images failed while the others succeeded (absent when none did). */
  images_failed: Schema.optional(Schema.Int)
})
export type ImagesResponse = typeof ImagesResponse.Type
