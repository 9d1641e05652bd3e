/** A request body that sends the start of a JSON object and then fails, as when a client goes away mid-upload. */
export const brokenBody = (): ReadableStream<Uint8Array> =>
  new ReadableStream<Uint8Array>({
    start: (controller) => {
      controller.enqueue(new TextEncoder().encode('{"prompt":"a fo'))
      controller.error(new Error("client went away"))
    }
  })
