/**
 * Byte-level JSON helpers for the one large value the gateway handles: a
 * base64 image of 1-3 MB. Decoding it to a string, JSON-parsing it and
 * JSON-stringifying it again costs several milliseconds of CPU per image;
 * these helpers find it in the upstream's bytes and copy it to the answer
 * without ever turning it into a JavaScript string.
 */

import { Buffer } from "node:buffer"

const QUOTE = 0x22
/**
 * Searched for with `Buffer#indexOf` and a one-byte needle, which is a native
 * memchr. `Uint8Array#indexOf` compares byte by byte: 0.4 ms for a 1.4 MB image
 * in workerd against 0.025 ms (measured; see the README's benchmark notes).
 */
const QUOTE_NEEDLE = Uint8Array.of(QUOTE)
const BACKSLASH = 0x5c

const isWhitespace = (byte: number | undefined) => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09

const skipWhitespace = (bytes: Uint8Array, from: number) => {
  let i = from
  while (isWhitespace(bytes[i])) i++
  return i
}

/** Index of the quote closing the string whose content starts at `from`, or -1. */
const stringEnd = (bytes: Buffer, from: number): number => {
  let search = from
  for (;;) {
    const quote = bytes.indexOf(QUOTE_NEEDLE, search)
    if (quote === -1) return -1
    let backslashes = 0
    while (bytes[quote - 1 - backslashes] === BACKSLASH) backslashes++
    if (backslashes % 2 === 0) return quote
    search = quote + 1
  }
}

const decoder = new TextDecoder()
const decodeKey = (raw: Uint8Array): string => {
  const text = decoder.decode(raw)
  return text.includes("\\") ? (JSON.parse(`"${text}"`) as string) : text
}

const isScalarByte = (byte: number | undefined) =>
  byte !== undefined &&
  ((byte >= 0x30 && byte <= 0x39) ||
    (byte >= 0x61 && byte <= 0x7a) ||
    byte === 0x2d ||
    byte === 0x2b ||
    byte === 0x2e ||
    byte === 0x45)

/**
 * The raw content of a JSON string (escapes untouched) is itself valid JSON
 * string content: it can be copied into another JSON string as it is, and a
 * client's JSON parser undoes any escapes. So the gateway copies the image
 * without re-validating it byte by byte: each pass over 1-3 MB, even a native
 * `indexOf`, costs about half a millisecond of CPU in workerd (`npm run bench`).
 */
export type TopLevelString =
  | { readonly _tag: "Found"; readonly raw: Uint8Array }
  | { readonly _tag: "Missing" }
  /** Not a flat object of scalars (or not JSON at all): the caller must parse it fully. */
  | { readonly _tag: "Unsupported" }

/**
 * Finds the raw content (between the quotes, escapes untouched) of a string
 * property of a flat top-level JSON object, e.g. `image` in
 * `{"provider":"replicate","image":"iVBOR..."}`. The long value is skipped with
 * a native byte search (`QUOTE_NEEDLE`), never scanned byte by byte in JavaScript.
 */
export const findTopLevelString = (input: Uint8Array, key: string): TopLevelString => {
  const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  const unsupported = { _tag: "Unsupported" } as const
  let i = skipWhitespace(bytes, 0)
  if (bytes[i] !== 0x7b) return unsupported
  i = skipWhitespace(bytes, i + 1)
  if (bytes[i] === 0x7d) return { _tag: "Missing" }
  let found: Uint8Array | undefined
  for (;;) {
    if (bytes[i] !== QUOTE) return unsupported
    const keyEnd = stringEnd(bytes, i + 1)
    if (keyEnd === -1) return unsupported
    const name = decodeKey(bytes.subarray(i + 1, keyEnd))
    i = skipWhitespace(bytes, keyEnd + 1)
    if (bytes[i] !== 0x3a) return unsupported
    i = skipWhitespace(bytes, i + 1)
    if (bytes[i] === QUOTE) {
      const valueEnd = stringEnd(bytes, i + 1)
      if (valueEnd === -1) return unsupported
      if (name === key) found = input.subarray(i + 1, valueEnd)
      i = valueEnd + 1
    } else {
      const start = i
      while (isScalarByte(bytes[i])) i++
      if (i === start) return unsupported
    }
    i = skipWhitespace(bytes, i)
    if (bytes[i] === 0x2c) {
      i = skipWhitespace(bytes, i + 1)
      continue
    }
    if (bytes[i] !== 0x7d) return unsupported
    if (skipWhitespace(bytes, i + 1) !== bytes.length) return unsupported
    return found === undefined ? { _tag: "Missing" } : { _tag: "Found", raw: found }
  }
}

export type StringValues =
  | { readonly _tag: "Found"; readonly values: ReadonlyArray<Uint8Array> }
  /** The text ends inside a string: not complete JSON. */
  | { readonly _tag: "Unsupported" }

/**
 * The raw contents of every string value of `key`, at any depth, in document order: for example each
 * `b64_json` in OpenAI's `{"created":1,"data":[{"b64_json":"iVBOR..."}]}`. Strings are skipped with the
 * native byte search, as in `findTopLevelString`; only the few bytes between them are read in JavaScript.
 * A string followed by a colon is a key (in JSON nothing else is), so a key's own name inside another
 * string value cannot be mistaken for it.
 */
export const findStringValues = (input: Uint8Array, key: string): StringValues => {
  const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  const values: Array<Uint8Array> = []
  let pendingKey: string | undefined
  let i = 0
  while (i < bytes.length) {
    if (bytes[i] !== QUOTE) {
      if (!isWhitespace(bytes[i])) pendingKey = undefined
      i++
      continue
    }
    const end = stringEnd(bytes, i + 1)
    if (end === -1) return { _tag: "Unsupported" }
    const next = skipWhitespace(bytes, end + 1)
    if (bytes[next] === 0x3a) {
      pendingKey = decodeKey(bytes.subarray(i + 1, end))
      i = next + 1
      continue
    }
    if (pendingKey === key) values.push(input.subarray(i + 1, end))
    pendingKey = undefined
    i = end + 1
  }
  return { _tag: "Found", values }
}
