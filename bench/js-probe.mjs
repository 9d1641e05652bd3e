// The JavaScript of one `n: 1` `b64_json` request, gateway or floor, in a fresh Node process: the handler is
// built from its bundle and called in process, the upstream is a byte stream in the same process (as a fetch body
// is in workerd), so no network, runtime or inspector is measured, only the JavaScript the two run. Prints one
// JSON line: CPU ms per request over `requests` requests, after a warm-up. Run by `BENCH_ONLY=js`.
import { imageBase64 } from "../test/support/fakeUpstream.ts"

const [which, bundle, requestsArg] = process.argv.slice(2)
const requests = Number(requestsArg ?? 400)
const IMAGE_BYTES = 1024 * 1024
const CHUNK = 64 * 1024

// The fake upstream's answer, as the ai-sdk app sends it.
const answer = Buffer.from(JSON.stringify({ provider: "replicate", image: imageBase64("png", IMAGE_BYTES) }))

globalThis.fetch = async () => {
  let offset = 0
  const body = new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: CHUNK,
    pull(controller) {
      const request = controller.byobRequest
      if (offset >= answer.length) {
        controller.close()
        request?.respond(0)
        return
      }
      const size = Math.min(request.view.byteLength, CHUNK, answer.length - offset)
      request.view.set(answer.subarray(offset, offset + size))
      offset += size
      request.respond(size)
    }
  })
  return new Response(body, { status: 200, headers: { "content-type": "application/json" } })
}

const module = await import(new URL(`file://${bundle}`).href)
const handler =
  which === "floor"
    ? module.makeFloorHandler({ UPSTREAM_URL: "http://upstream.test" })
    : module.makeHandler(
        module.ConfigProvider.fromUnknown({
          API_KEYS: "k",
          ENVIRONMENT: "production",
          UPSTREAM_URL: "http://upstream.test",
          LOG_LEVEL: "Warn"
        }),
        {}
      ).handler

const payload = JSON.stringify({ prompt: "a bench", model: "replicate/flux-schnell", response_format: "b64_json" })
const headers = { "content-type": "application/json", "content-length": String(payload.length), authorization: "Bearer k" }
const one = async () => {
  const response = await handler(
    new Request("http://gateway.test/v1/images/generations", { method: "POST", headers, body: payload })
  )
  let size = 0
  for await (const chunk of response.body) size += chunk.byteLength
  if (response.status !== 200 || size < IMAGE_BYTES) throw new Error(`${which}: status ${response.status}, ${size} bytes`)
}
const cpuMs = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}
for (let i = 0; i < 50; i++) await one()
const start = cpuMs()
for (let i = 0; i < requests; i++) await one()
console.log(JSON.stringify({ cpuMsPerRequest: (cpuMs() - start) / requests }))
