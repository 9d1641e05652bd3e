// The Playground panel: a generation or an edit from the page, with its images and attempts.
import { $, api, copyButton, h, ms, state, t } from "./core.js"

export const MIME = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" }

export const imageFigure = (src, index, prompt, format) => {
  const extension = format === "jpeg" ? "jpg" : (format ?? "png")
  return h(
    "figure",
    {},
    h("img", { src, alt: t("imageAlt", { n: index + 1, prompt }), loading: "lazy" }),
    h(
      "figcaption",
      {},
      h("a", { href: src, download: `image-${index + 1}.${extension}` }, t("download")),
      copyButton(() => (src.startsWith("data:") ? src : new URL(src, location.href).href))
    )
  )
}

/** Reads `image_generation.completed` (`image_edit.completed`) / `error` events from an SSE body as they arrive. */
export const readEvents = async (response, onEvent) => {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ""
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    buffer += value
    let end = buffer.indexOf("\n\n")
    while (end !== -1) {
      const frame = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const name = /^event: (.*)$/m.exec(frame)?.[1]
      const data = frame
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice(6))
        .join("\n")
      if (name && data) onEvent(name, JSON.parse(data))
      end = buffer.indexOf("\n\n")
    }
  }
}

/** The recorded event of a request, for its attempt count; written just after the response, so it is polled briefly. */
export const recordedEvent = async (requestId) => {
  // Only admin keys read the recorded requests.
  for (let i = 0; i < 15 && requestId && state.role === "admin"; i++) {
    const recent = await api("/v1/gateway/requests?limit=20").catch(() => null)
    const found = recent?.data.find((event) => event.requestId === requestId)
    if (found) return found
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return null
}

export const play = async (event) => {
  event.preventDefault()
  const button = $("#play-go")
  const meta = $("#play-meta")
  const errorBox = $("#play-error")
  const images = $("#play-images")
  const prompt = $("#play-prompt").value
  const body = {
    prompt,
    model: $("#play-model").value,
    n: Number($("#play-n").value),
    size: $("#play-size").value,
    response_format: $("#play-format").value,
    stream: $("#play-stream").checked
  }
  // An image attached makes the request an edit of it (multipart, as the SDKs send it; streamed too when asked).
  const image = $("#play-image").files?.[0]
  const mask = $("#play-mask").files?.[0]
  let request
  if (image) {
    const form = new FormData()
    for (const [name, value] of Object.entries(body)) form.append(name, String(value))
    form.append("image", image)
    if (mask) form.append("mask", mask)
    request = { url: "/v1/images/edits", headers: { authorization: `Bearer ${state.key}` }, body: form }
  } else {
    request = {
      url: "/v1/images/generations",
      headers: { authorization: `Bearer ${state.key}`, "content-type": "application/json" },
      body: JSON.stringify(body)
    }
  }
  button.disabled = true
  button.textContent = t("generating")
  errorBox.hidden = true
  images.replaceChildren()
  meta.textContent = ""
  const started = performance.now()
  let requestId = null
  try {
    const response = await fetch(request.url, { method: "POST", headers: request.headers, body: request.body })
    requestId = response.headers.get("x-request-id")
    if (!response.ok) {
      const text = await response.text()
      let shown = text
      try {
        shown = JSON.stringify(JSON.parse(text), null, 2)
      } catch {}
      errorBox.textContent = `HTTP ${response.status}\n${shown}`
      errorBox.hidden = false
    } else if (body.stream) {
      let index = 0
      await readEvents(response, (name, data) => {
        if (name === "image_generation.completed" || name === "image_edit.completed") {
          images.append(
            imageFigure(
              `data:${MIME[data.output_format] ?? "image/png"};base64,${data.b64_json}`,
              index++,
              prompt,
              data.output_format
            )
          )
        } else if (name === "error") {
          errorBox.textContent = JSON.stringify(data, null, 2)
          errorBox.hidden = false
        }
      })
    } else {
      const result = await response.json()
      const format = result.output_format
      result.data.forEach((item, index) => {
        const src = item.url ?? `data:${MIME[format] ?? "image/png"};base64,${item.b64_json}`
        images.append(imageFigure(src, index, prompt, format))
      })
      // Images that failed after the answer began are counted at its end; the header has those failed before.
      const failed = result.images_failed ?? response.headers.get("x-images-failed")
      if (failed) {
        errorBox.textContent = `${failed} of ${body.n} images failed`
        errorBox.hidden = false
      }
    }
  } catch (error) {
    errorBox.textContent = `${t("requestFailed")}: ${error.message}`
    errorBox.hidden = false
  } finally {
    button.disabled = false
    button.textContent = t("generate")
  }
  const latency = Math.round(performance.now() - started)
  const parts = [`${t("latency")} ${ms(latency)}`]
  if (requestId) parts.push(`${t("requestId")} ${requestId}`)
  meta.textContent = parts.join(" · ")
  const recorded = await recordedEvent(requestId)
  if (recorded)
    meta.textContent = [
      `${t("latency")} ${ms(latency)}`,
      `${t("attempts")} ${recorded.attempts}`,
      `${t("requestId")} ${requestId}`
    ].join(" · ")
}
