import { Buffer } from "node:buffer"
import * as Schema from "effect/Schema"
import { detectImageFormat, type ImageFormat } from "./ImageFormat.ts"
import { ImageGenerationRequest } from "./ImageGeneration.ts"

/** What stands for the prompt of a variation inside the gateway (usage records, the offline model's tint). */
export const VARIATION_PROMPT = "(variation)"

/** At most this many input images, as OpenAI's GPT image models take. */
export const MAX_INPUT_IMAGES = 16

/**
 * `POST /v1/images/edits`, the fields besides the files: OpenAI's edit request. Multipart sends every
 * value as a string; `fieldsOfForm` turns numbers and booleans back before this decodes them.
 */
const generation = ImageGenerationRequest.fields

export class ImageEditRequest extends Schema.Class<ImageEditRequest>("ImageEditRequest")({
  // The generation request's own definitions: an edit's fields mean and check the same.
  prompt: generation.prompt,
  model: generation.model,
  n: generation.n,
  size: generation.size,
  response_format: generation.response_format,
  quality: generation.quality,
  background: generation.background,
  output_format: generation.output_format,
  output_compression: generation.output_compression,
  input_fidelity: Schema.optional(Schema.NullOr(Schema.String)),
  stream: generation.stream,
  partial_images: generation.partial_images,
  user: generation.user
}) {}

/** `POST /v1/images/variations`, the fields besides the image. */
export class ImageVariationRequest extends Schema.Class<ImageVariationRequest>("ImageVariationRequest")({
  model: generation.model,
  n: generation.n,
  size: generation.size,
  response_format: generation.response_format,
  user: generation.user
}) {}

/** An edit or a variation as the generation it is made as: the same fields, its images carried beside it. */
export const asGenerationRequest = (request: ImageEditRequest | ImageVariationRequest): ImageGenerationRequest =>
  new ImageGenerationRequest({
    // A variation has no prompt: the upstream gets none (the offline model draws its tint from this text).
    prompt: "prompt" in request ? request.prompt : VARIATION_PROMPT,
    model: request.model,
    n: request.n,
    size: request.size,
    response_format: request.response_format,
    user: request.user,
    ...("prompt" in request
      ? {
          quality: request.quality,
          background: request.background,
          output_format: request.output_format,
          output_compression: request.output_compression
        }
      : {})
  })

/**
 * An uploaded image, its format known from its first bytes (never from its name or declared type). A `Blob`:
 * an uploaded file stays the platform's own part of the parsed form, handed on to an upstream without a copy
 * of the gateway's own (the platform's form body for the upstream is its own: see `bench/multipart-floor`), and
 * read whole only by what needs its pixels.
 */
export interface InputImage {
  readonly blob: Blob
  readonly format: ImageFormat
}

/** What an edit takes besides its fields: the images, and the mask (a PNG) that applies to the first. */
export interface EditInputs {
  readonly images: ReadonlyArray<InputImage>
  readonly mask?: InputImage | undefined
  /** A variation (`/v1/images/variations`): the one image, no prompt. */
  readonly variation?: boolean | undefined
}

/** An upload that cannot be used: the field it came in, and why. `tooLarge`: answered 413. */
export class UploadRejected extends Schema.TaggedError<UploadRejected>()("UploadRejected", {
  param: Schema.String,
  message: Schema.String,
  tooLarge: Schema.Boolean
}) {}

const NUMERIC = new Set(["n", "output_compression", "partial_images"])
const BOOLEAN = new Set(["stream"])

/**
 * A multipart form's text fields as the JSON request would carry them: numbers and booleans arrive as strings
 * (`n="2"`, `stream="true"`). A value that is not a number stays a string, so the schema names the field.
 * Only the last value of a repeated text field counts; file fields are not fields.
 */
export const fieldsOfForm = (entries: Iterable<readonly [string, unknown]>): Record<string, unknown> => {
  const fields: Record<string, unknown> = {}
  for (const [name, value] of entries) {
    if (typeof value !== "string") continue
    const trimmed = value.trim()
    if (NUMERIC.has(name) && trimmed !== "" && Number.isFinite(Number(trimmed))) fields[name] = Number(trimmed)
    else if (BOOLEAN.has(name) && (trimmed === "true" || trimmed === "false")) fields[name] = trimmed === "true"
    else fields[name] = value
  }
  return fields
}

const notAnImage = (param: string, only: ImageFormat | undefined) =>
  new UploadRejected({
    param,
    message:
      only === undefined
        ? `'${param}' must be a PNG, JPEG or WebP image (read from its bytes, not its name).`
        : `'${param}' must be a ${only.toUpperCase()} image (read from its bytes, not its name).`,
    tooLarge: false
  })

const tooLarge = (param: string, maxBytes: number) =>
  new UploadRejected({
    param,
    message: `'${param}' is larger than this gateway accepts (${maxBytes} bytes; MAX_IMAGE_BYTES).`,
    tooLarge: true
  })

/** One image's bytes, checked: PNG, JPEG or WebP (`png` only for a mask), within `maxBytes`. */
export const inputImage = (
  param: string,
  bytes: Uint8Array,
  maxBytes: number,
  only?: ImageFormat
): InputImage | UploadRejected => {
  if (bytes.byteLength > maxBytes) return tooLarge(param, maxBytes)
  const format = detectImageFormat(bytes)
  if (format === undefined || (only !== undefined && format !== only)) return notAnImage(param, only)
  return { blob: new Blob([bytes as Uint8Array<ArrayBuffer>]), format }
}

/** An uploaded file, checked the same way from its size and first bytes only: the file itself is kept, not copied. */
export const fileImage = async (
  param: string,
  file: Blob,
  maxBytes: number,
  only?: ImageFormat
): Promise<InputImage | UploadRejected> => {
  if (file.size > maxBytes) return tooLarge(param, maxBytes)
  const format = detectImageFormat(new Uint8Array(await file.slice(0, 16).arrayBuffer()))
  if (format === undefined || (only !== undefined && format !== only)) return notAnImage(param, only)
  return { blob: file, format }
}

/** Whether a catalogue model takes this edit: edits at all, and a mask when there is one. */
export const takesEdit = (
  model: { readonly edits?: boolean | undefined; readonly masks?: boolean | undefined },
  inputs: EditInputs
) => model.edits === true && (inputs.mask === undefined || model.masks === true)

/** An edit's upload, read: its other fields as the JSON request would carry them, and its images. */
export interface EditUpload {
  readonly fields: Record<string, unknown>
  readonly inputs: EditInputs
}

const isImageField = (name: string) => name === "image" || name === "image[]" || /^image\[\d+\]$/.test(name)

const tooMany = () =>
  new UploadRejected({ param: "image", message: `An edit takes at most ${MAX_INPUT_IMAGES} images.`, tooLarge: false })
const missingImage = (param: string) =>
  new UploadRejected({ param, message: `Missing required parameter: '${param}'.`, tooLarge: false })
/**
 * A multipart edit, as the SDKs send it: one image as `image`, several as `image[]` (or a repeated `image`),
 * the mask as `mask`. The form is the platform's parse of the body (`Request.formData()`); each file is
 * checked from its size and first bytes and kept as it is, so an upload is held once, as the form.
 */
export const readEditForm = async (form: FormData, maxBytes: number): Promise<EditUpload | UploadRejected> => {
  const images: Array<InputImage> = []
  let mask: InputImage | undefined
  const text: Array<readonly [string, string]> = []
  for (const [name, value] of form.entries()) {
    const asImage = isImageField(name)
    if (!asImage && name !== "mask") {
      if (typeof value === "string") text.push([name, value])
      continue
    }
    const param = asImage ? "image" : "mask"
    if (typeof value === "string") {
      return new UploadRejected({ param, message: `'${param}' must be a file part, not text.`, tooLarge: false })
    }
    if (asImage && images.length === MAX_INPUT_IMAGES) return tooMany()
    const checked = await fileImage(param, value, maxBytes, asImage ? undefined : "png")
    if (checked instanceof UploadRejected) return checked
    if (asImage) images.push(checked)
    else mask = checked
  }
  if (images.length === 0) return missingImage("image")
  return { fields: fieldsOfForm(text), inputs: { images, mask } }
}

/** A multipart variation: one `image` file, checked like an edit's. */
export const readVariationForm = async (form: FormData, maxBytes: number): Promise<EditUpload | UploadRejected> => {
  const upload = await readEditForm(form, maxBytes)
  if (upload instanceof UploadRejected) return upload
  if (upload.inputs.images.length > 1 || upload.inputs.mask !== undefined) {
    return new UploadRejected({ param: "image", message: "A variation takes one image and no mask.", tooLarge: false })
  }
  return { fields: upload.fields, inputs: { images: upload.inputs.images, variation: true } }
}

const DATA_URL = /^data:([\w.+-]+\/[\w.+-]+)?(;[\w-]+=[\w.-]+)*;base64,/i

/** An `{"image_url": ...}` object's data URL, within `maxBytes`: no other URL is read here. */
const dataUrlImage = (param: string, value: unknown, maxBytes: number, only?: ImageFormat): InputImage | UploadRejected => {
  const url =
    typeof value === "object" && value !== null && Object.hasOwn(value, "image_url")
      ? (value as { readonly image_url: unknown }).image_url
      : undefined
  if (typeof url !== "string") {
    return new UploadRejected({
      param,
      message: `'${param}' must be {"image_url": "data:image/png;base64,..."}.`,
      tooLarge: false
    })
  }
  return imageFromDataUrl(param, url, maxBytes, only)
}

/** Whether a URL is a `data:` URL with base64 content (the only kind read without a fetch). */
export const isDataUrl = (url: string) => DATA_URL.test(url)

/** The image in a `data:` URL with base64 content, checked by its bytes, within `maxBytes`. */
export const imageFromDataUrl = (
  param: string,
  url: string,
  maxBytes: number,
  only?: ImageFormat
): InputImage | UploadRejected => {
  const prefix = DATA_URL.exec(url)
  if (prefix === null) {
    return new UploadRejected({
      param,
      message: `'${param}' must be a data: URL with base64 content; upload other images as multipart/form-data.`,
      tooLarge: false
    })
  }
  const base64 = url.slice(prefix[0].length)
  if (Math.floor((base64.length * 3) / 4) > maxBytes + 2) return tooLarge(param, maxBytes)
  return inputImage(param, Buffer.from(base64, "base64"), maxBytes, only)
}

/** The JSON form of an edit (GPT image clients): `images: [{"image_url": "data:..."}]`, `mask: {"image_url": ...}`. */
export const readEditJson = (body: unknown, maxBytes: number): EditUpload | UploadRejected => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return new UploadRejected({ param: "images", message: "The request body must be a JSON object.", tooLarge: false })
  }
  const { images: list, mask: maskValue, ...fields } = body as Record<string, unknown>
  if (!Array.isArray(list) || list.length === 0) return missingImage("images")
  if (list.length > MAX_INPUT_IMAGES) return tooMany()
  const images: Array<InputImage> = []
  for (const item of list) {
    const image = dataUrlImage("images", item, maxBytes)
    if (image instanceof UploadRejected) return image
    images.push(image)
  }
  const mask = maskValue === undefined || maskValue === null ? undefined : dataUrlImage("mask", maskValue, maxBytes, "png")
  if (mask instanceof UploadRejected) return mask
  return { fields, inputs: { images, mask } }
}
