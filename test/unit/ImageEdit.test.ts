import { encode } from "fast-png"
import { describe, expect, it } from "vitest"
import { UpstreamRejected } from "../../src/domain/Errors.ts"
import {
  fieldsOfForm,
  inputImage,
  MAX_INPUT_IMAGES,
  readEditForm,
  readEditJson,
  takesEdit,
  UploadRejected
} from "../../src/domain/ImageEdit.ts"
import { parseSize } from "../../src/domain/ImageSize.ts"
import { renderEdit } from "../../src/services/upstreams/LocalUpstream.ts"
import { decodePng } from "../../src/services/upstreams/Png.ts"

const PNG = encode({ width: 2, height: 2, channels: 3, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12) })
const JPEG = Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 0x10)
const file = (bytes: Uint8Array, name = "a.png") => new File([bytes as Uint8Array<ArrayBuffer>], name)

describe("edit uploads", () => {
  it("reads multipart text fields as the JSON request carries them", () => {
    expect(
      fieldsOfForm([
        ["prompt", "a cat"],
        ["n", "2"],
        ["output_compression", " 80 "],
        ["stream", "false"],
        ["size", "1024x1024"],
        ["n2", "3"]
      ])
    ).toEqual({ prompt: "a cat", n: 2, output_compression: 80, stream: false, size: "1024x1024", n2: "3" })
    // What is not a number stays text, so the schema names the field.
    expect(fieldsOfForm([["n", "two"]])).toEqual({ n: "two" })
  })

  it("knows an image by its bytes, within the limit; a mask must be a PNG", () => {
    expect(inputImage("image", PNG, 1000)).toMatchObject({ format: "png" })
    expect(inputImage("image", JPEG, 1000)).toMatchObject({ format: "jpeg" })
    expect(inputImage("image", new TextEncoder().encode("hello"), 1000)).toMatchObject({ param: "image", tooLarge: false })
    expect(inputImage("image", PNG, PNG.byteLength - 1)).toMatchObject({ param: "image", tooLarge: true })
    expect(inputImage("mask", JPEG, 1000, "png")).toMatchObject({ param: "mask", message: expect.stringContaining("PNG") })
  })

  it("takes `image`, `image[]` and repeated `image` parts, and a mask, from a form", async () => {
    const form = new FormData()
    form.append("prompt", "x")
    form.append("image[]", file(PNG))
    form.append("image", file(JPEG, "b.jpg"))
    form.append("mask", file(PNG))
    const upload = await readEditForm(form, 1000)
    if (upload instanceof UploadRejected) throw upload
    expect(upload.fields).toEqual({ prompt: "x" })
    expect(upload.inputs.images.map((image) => image.format)).toEqual(["png", "jpeg"])
    expect(upload.inputs.mask?.format).toBe("png")
  })

  it("keeps an uploaded file as it is: checked from its size and first bytes, not copied", async () => {
    const upload = file(PNG)
    const form = new FormData()
    form.append("image", upload)
    const read = await readEditForm(form, 1000)
    if (read instanceof UploadRejected) throw read
    expect(read.inputs.images[0]?.blob.size).toBe(PNG.byteLength)
    expect(read.inputs.images[0]?.blob).toBeInstanceOf(Blob)
  })

  it("refuses a form without an image, with text for a file, with too many images, or a file past the limit", async () => {
    const none = new FormData()
    none.append("prompt", "x")
    expect(await readEditForm(none, 1000)).toMatchObject({ param: "image", message: "Missing required parameter: 'image'." })
    const text = new FormData()
    text.append("image", "not a file")
    expect(await readEditForm(text, 1000)).toMatchObject({ param: "image" })
    const many = new FormData()
    for (let i = 0; i <= MAX_INPUT_IMAGES; i++) many.append("image[]", file(PNG))
    expect(await readEditForm(many, 1000)).toMatchObject({ message: `An edit takes at most ${MAX_INPUT_IMAGES} images.` })
    const large = new FormData()
    large.append("image", file(new Uint8Array(2000)))
    expect(await readEditForm(large, 1000)).toMatchObject({ param: "image", tooLarge: true })
  })

  it("reads the JSON form's data URLs, and only data URLs", async () => {
    const url = `data:image/png;base64,${Buffer.from(PNG).toString("base64")}`
    const upload = readEditJson({ prompt: "x", images: [{ image_url: url }], mask: { image_url: url } }, 1000)
    if (upload instanceof UploadRejected) throw upload
    expect(upload.fields).toEqual({ prompt: "x" })
    expect(Array.from(new Uint8Array((await upload.inputs.images[0]?.blob.arrayBuffer()) ?? new ArrayBuffer(0)))).toEqual(
      Array.from(PNG)
    )
    expect(readEditJson({ prompt: "x", images: [{ image_url: "https://example.com/a.png" }] }, 1000)).toMatchObject({
      param: "images"
    })
    expect(readEditJson({ prompt: "x" }, 1000)).toMatchObject({ param: "images" })
    expect(readEditJson([], 1000)).toMatchObject({ param: "images" })
    expect(readEditJson({ prompt: "x", images: [{ image_url: url }] }, 10)).toMatchObject({ tooLarge: true })
  })

  it("sends an edit only to a model that takes it, and a mask only to one that takes masks", () => {
    const image = { blob: new Blob([PNG]), format: "png" as const }
    expect(takesEdit({}, { images: [image] })).toBe(false)
    expect(takesEdit({ edits: true }, { images: [image] })).toBe(true)
    expect(takesEdit({ edits: true }, { images: [image], mask: image })).toBe(false)
    expect(takesEdit({ edits: true, masks: true }, { images: [image], mask: image })).toBe(true)
  })
})

describe("PNG decoding for offline edits", () => {
  it("reads every colour type at 8 and 16 bits as RGBA", async () => {
    const cases = [
      { channels: 1, data: Uint8Array.of(10, 20, 30, 40), rgba: [10, 10, 10, 255] },
      { channels: 2, data: Uint8Array.of(10, 0, 20, 50, 30, 100, 40, 150), rgba: [10, 10, 10, 0] },
      { channels: 3, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), rgba: [1, 2, 3, 255] },
      { channels: 4, data: Uint8Array.from({ length: 16 }, (_, i) => i * 10), rgba: [0, 10, 20, 30] }
    ]
    for (const { channels, data, rgba } of cases) {
      const decoded = await decodePng(encode({ width: 2, height: 2, channels, data }))
      if (decoded instanceof UpstreamRejected) throw decoded
      expect(Array.from(decoded.data.subarray(0, 4))).toEqual(rgba)
      expect(decoded.data.byteLength).toBe(16)
    }
    const deep = await decodePng(
      encode({ width: 1, height: 1, channels: 3, depth: 16, data: Uint16Array.of(0x1234, 0x5678, 0x9abc) })
    )
    if (deep instanceof UpstreamRejected) throw deep
    expect(Array.from(deep.data)).toEqual([0x12, 0x56, 0x9a, 255])
  })

  it("refuses what it cannot read, naming the image", async () => {
    expect(await decodePng(Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a))).toMatchObject({ param: "image" })
    expect(await renderEdit("x", parseSize("64x64"), { images: [{ blob: new Blob([JPEG]), format: "jpeg" }] })).toMatchObject({
      status: 400,
      param: "image"
    })
  })
})
