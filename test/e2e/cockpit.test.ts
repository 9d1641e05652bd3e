import { existsSync, mkdirSync } from "node:fs"
import { encode as encodePng } from "fast-png"
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { DEVELOPMENT_API_KEY } from "../../src/services/GatewayConfig.ts"
import { E2E_ADMIN_KEY, E2E_GUEST_KEY } from "../support/e2eKeys.ts"

/**
 * The status cockpit in a real browser: Debian's Chromium driven by
 * playwright-core, against `npm start` (wrangler dev serving the static page
 * and the Worker) with the fake upstream. Screenshots of each panel are saved
 * under test-results/cockpit/ as artifacts.
 */

const SHOTS = "test-results/cockpit"
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

let browser: Browser
const base = () => inject("gatewayUrl")

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`No Chromium at ${CHROMIUM}: install Debian's chromium (.ci/run does) or set CHROMIUM_PATH.`)
  }
  mkdirSync(SHOTS, { recursive: true })
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
  })
})

afterAll(async () => {
  await browser?.close()
})

interface Opened {
  readonly context: BrowserContext
  readonly page: Page
  readonly errors: Array<string>
}

const open = async (options: { locale?: string; width?: number; height?: number } = {}): Promise<Opened> => {
  const context = await browser.newContext({
    locale: options.locale ?? "en-US",
    viewport: { width: options.width ?? 1280, height: options.height ?? 900 }
  })
  const page = await context.newPage()
  const errors: Array<string> = []
  page.on("pageerror", (error) => errors.push(error.message))
  page.on("console", (message) => {
    // A wrong key is expected to produce a 401 in the console; anything else is a fault of the page.
    if (message.type() === "error" && !message.text().includes("401")) errors.push(message.text())
  })
  await page.goto(`${base()}/`)
  return { context, page, errors }
}

const connect = async (page: Page, key = DEVELOPMENT_API_KEY) => {
  await page.getByLabel("API key").fill(key)
  await page.getByRole("button", { name: "Connect" }).click()
}

const playground = (page: Page) => page.locator("#playground")

const shot = (page: Page, name: string, selector?: string) =>
  selector === undefined
    ? page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true })
    : page.locator(selector).screenshot({ path: `${SHOTS}/${name}.png` })

describe("status cockpit in Chromium", () => {
  it("serves a page with no key in its HTML, scripts or styles, and shows public facts without one", async () => {
    for (const path of ["/", "/cockpit.js", "/cockpit.css", "/docs", "/docs.js"]) {
      const response = await fetch(`${base()}${path}`)
      expect(response.status, path).toBe(200)
      const text = await response.text()
      expect(text, path).not.toContain(DEVELOPMENT_API_KEY)
      expect(text, path).not.toMatch(/sk-[A-Za-z0-9]{6,}/)
    }
    const { context, page, errors } = await open()
    await expect.poll(() => page.locator("#health").textContent()).toContain("running")
    await expect.poll(() => page.locator("#status-public").textContent()).toContain("development")
    expect(await page.locator("#upstreams").isVisible()).toBe(false)
    expect(await page.getByText("Enter an API key above to see this panel.").first().isVisible()).toBe(true)
    // Client set-up is public, filled with this gateway's origin and a placeholder key.
    const snippets = await page.locator("#snippets").textContent()
    expect(snippets).toContain(`${base()}/v1`)
    expect(snippets).toContain("YOUR_API_KEY")
    expect(snippets).toContain("CUSTOM_MODELS=")
    await shot(page, "00-no-key")
    await shot(page, "panel-clients", "#clients")
    expect(errors).toEqual([])
    await context.close()
  })

  it("tells the operator clearly when the key is wrong", async () => {
    const { context, page } = await open()
    await connect(page, "sk-wrong-key")
    const alert = page.getByRole("alert")
    await expect.poll(() => alert.textContent()).toContain("The key was rejected (401)")
    expect(await alert.textContent()).toContain("Incorrect API key")
    expect(await page.locator("#upstreams").isVisible()).toBe(false)
    await shot(page, "01-wrong-key")
    await context.close()
  })

  it("shows status and models once the key is entered, keeping the key out of the page", async () => {
    const { context, page, errors } = await open()
    await connect(page)
    await page.locator("#upstreams .card").first().waitFor()
    const upstreams = await page.locator("#upstreams").textContent()
    expect(upstreams).toContain("ai-sdk")
    expect(upstreams).toContain(new URL(inject("fakeUpstreamUrl")).origin)
    expect(upstreams).toContain("local")
    expect(upstreams).toContain("my-openai")
    expect(upstreams).toMatch(/closed/)
    const config = await page.locator("#config").textContent()
    expect(config).toContain("up to 3 attempts")
    expect(config).toContain("Usage statistics")
    expect(config).toContain("0 in API_KEYS, 2 named (1 with limits; a limits store that is down lets requests through)")
    const models = page.locator("#models-body")
    await expect.poll(() => models.locator("tr").count()).toBeGreaterThan(20)
    expect(await models.textContent()).toContain("dall-e-3")
    expect(await models.textContent()).toContain("local/preview")
    // The key is held in sessionStorage only, and not in the DOM.
    expect(await page.evaluate(() => sessionStorage.getItem("ai-image-gateway.key"))).toBe(DEVELOPMENT_API_KEY)
    expect(await page.evaluate(() => localStorage.getItem("ai-image-gateway.key"))).toBeNull()
    expect(await page.content()).not.toContain(DEVELOPMENT_API_KEY)
    await shot(page, "panel-status", "#status")
    await shot(page, "panel-models", "#models")
    expect(errors).toEqual([])
    await context.close()
  })

  it("a first run: paste the development key, click Generate, and an image of the offline model appears", async () => {
    const { context, page, errors } = await open()
    await connect(page)
    await page.locator("#play-model option").first().waitFor({ state: "attached" })
    // Under npm start the default model is the offline one, and every control starts on it.
    expect(await page.locator("#play-model").inputValue()).toBe("local/preview")
    expect(await page.locator("#probe-model").inputValue()).toBe("local/preview")
    expect(await page.locator("#snippets").textContent()).toContain('model: "local/preview"')
    expect(await page.getByLabel("Prompt", { exact: true }).inputValue()).not.toBe("")
    await page.getByRole("button", { name: "Generate" }).click()
    await expect.poll(() => page.locator("#play-images img").count()).toBe(1)
    expect(await page.locator("#play-error").isHidden()).toBe(true)
    expect(errors).toEqual([])
    await context.close()
  })

  it("generates in the playground, shows the image with its request id and attempts, and the statistics show the request", async () => {
    const { context, page, errors } = await open()
    await connect(page)
    await page.locator("#play-model option").first().waitFor({ state: "attached" })
    const prompt = `a glass lighthouse ${crypto.randomUUID().slice(0, 8)}`
    await page.getByLabel("Prompt", { exact: true }).fill(prompt)
    await playground(page).getByLabel("Model", { exact: true }).selectOption("local/preview")
    await page.getByLabel("Size").selectOption("512x512")
    await page.getByLabel("n", { exact: true }).fill("2")
    await page.getByRole("button", { name: "Generate" }).click()
    const images = page.locator("#play-images img")
    await expect.poll(() => images.count()).toBe(2)
    await expect
      .poll(() => images.first().evaluate((image) => (image as unknown as { naturalWidth: number }).naturalWidth))
      .toBe(512)
    expect(await images.first().getAttribute("alt")).toContain(prompt)
    await expect.poll(() => page.locator("#play-meta").textContent(), { timeout: 10_000 }).toMatch(/attempts 2/)
    const meta = (await page.locator("#play-meta").textContent()) ?? ""
    const requestId = /req_[0-9a-f]+/.exec(meta)?.[0]
    expect(requestId).toBeDefined()
    expect(await page.locator("#play-images a[download]").first().getAttribute("download")).toBe("image-1.png")
    // The recent requests list and the counters now include this request.
    await expect.poll(() => page.locator("#recent-body").textContent(), { timeout: 10_000 }).toContain(requestId ?? "missing")
    const row = page.locator("#recent-body tr", { hasText: requestId ?? "missing" })
    expect(await row.textContent()).toContain("local/preview")
    expect(await row.textContent()).toContain("200")
    expect(Number((await page.locator(".kpi b").nth(2).textContent())?.replace(/\D/g, ""))).toBeGreaterThanOrEqual(2)
    expect(await page.locator("#chart-requests svg").count()).toBe(1)
    const perModel = page.locator("#window-models-body tr", { hasText: "local/preview" })
    expect(await perModel.locator("td").nth(1).textContent()).toBe("100%")
    await page.getByRole("button", { name: "Last hour" }).click()
    await expect.poll(() => page.locator("#window-models-body").textContent()).toContain("local/preview")
    await shot(page, "panel-playground", "#playground")
    await shot(page, "panel-usage", "#usage")
    expect(errors).toEqual([])
    await context.close()
  })

  it("edits an attached image in the playground, and shows the SDK's edit call in the client set-up", async () => {
    const { context, page, errors } = await open()
    await connect(page)
    await page.locator("#play-model option").first().waitFor({ state: "attached" })
    const prompt = `make it dusk ${crypto.randomUUID().slice(0, 8)}`
    await page.getByLabel("Prompt", { exact: true }).fill(prompt)
    await playground(page).getByLabel("Model", { exact: true }).selectOption("local/preview")
    await page.getByLabel("Size").selectOption("256x256")
    const photo = encodePng({ width: 40, height: 30, channels: 3, data: new Uint8Array(40 * 30 * 3).fill(180) })
    await page.getByLabel("Image to edit (optional)").setInputFiles({
      name: "photo.png",
      mimeType: "image/png",
      buffer: Buffer.from(photo)
    })
    await page.getByRole("button", { name: "Generate" }).click()
    const images = page.locator("#play-images img")
    await expect.poll(() => images.count()).toBe(1)
    await expect
      .poll(() => images.first().evaluate((image) => (image as unknown as { naturalWidth: number }).naturalWidth))
      .toBe(256)
    // Recorded as an edit.
    const requestId = /req_[0-9a-f]+/.exec((await page.locator("#play-meta").textContent()) ?? "")?.[0]
    await expect.poll(() => page.locator("#recent-body").textContent(), { timeout: 10_000 }).toContain(requestId ?? "missing")
    expect(await page.locator("#recent-body tr", { hasText: requestId ?? "missing" }).textContent()).toContain("edits")
    // The client set-up shows the edit call, with a model that edits.
    expect(await page.locator("#snippets").textContent()).toContain('images.edit(model="local/preview"')
    await shot(page, "playground-edit", "#playground")
    expect(errors).toEqual([])
    await context.close()
  })

  it("streams in the playground and shows errors exactly as the API returned them", async () => {
    const { context, page } = await open()
    await connect(page)
    await page.locator("#play-model option").first().waitFor({ state: "attached" })
    await page.getByLabel("Prompt", { exact: true }).fill("a streamed boat")
    await playground(page).getByLabel("Model", { exact: true }).selectOption("local/preview")
    await page.getByLabel("Stream").check()
    await page.getByRole("button", { name: "Generate" }).click()
    await expect.poll(() => page.locator("#play-images img").count()).toBe(1)

    await page.getByLabel("Stream").uncheck()
    await playground(page).getByLabel("Model", { exact: true }).selectOption("replicate/flux-schnell")
    await page.getByLabel("Prompt", { exact: true }).fill(`a rejected prompt [[id=${crypto.randomUUID()} faults=400]]`)
    await page.getByRole("button", { name: "Generate" }).click()
    const error = page.locator("#play-error")
    await error.waitFor()
    expect(await error.textContent()).toContain("HTTP 400")
    expect(await error.textContent()).toContain('"code": "upstream_rejected"')
    await shot(page, "playground-error", "#playground")
    await context.close()
  })

  it("shows every key's traffic in the Keys panel, and the key's name in recent requests", async () => {
    const generate = (key: string, model: string) =>
      fetch(`${base()}/v1/images/generations`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model, prompt: `keys panel ${crypto.randomUUID()}`, response_format: "b64_json" })
      })
    const before = (await (await fetch(`${base()}/v1/me`, { headers: { authorization: `Bearer ${E2E_GUEST_KEY}` } })).json()) as {
      today: { images: number }
    }
    for (const [key, model, status] of [
      [E2E_ADMIN_KEY, "local/preview", 200],
      [E2E_ADMIN_KEY, "local/preview", 200],
      [E2E_GUEST_KEY, "local/preview", 200],
      [E2E_GUEST_KEY, "my-openai/gpt-image-1", 404]
    ] as const) {
      const response = await generate(key, model)
      expect(response.status).toBe(status)
      await response.arrayBuffer()
    }
    const { context, page, errors } = await open()
    await connect(page, E2E_ADMIN_KEY)
    await page.getByRole("button", { name: "Last hour" }).click()
    const row = (name: string) => page.locator(`#keys-body tr[data-key="${name}"]`)
    // Usage events reach the statistics a second or so after each response; the panel refreshes on demand.
    await expect
      .poll(
        async () => {
          await page.getByRole("button", { name: "Refresh" }).click()
          return (await row("guest").locator("td").nth(3).textContent()) ?? ""
        },
        { timeout: 15_000 }
      )
      .not.toBe("0")
    const names = await page.locator("#keys-body th").allTextContents()
    expect(names).toEqual(expect.arrayContaining(["development", "team-admin", "guest"]))
    const guest = await row("guest").locator("td").allTextContents()
    expect(guest[0]).toBe("user")
    expect(guest[1]).toBe("local/preview")
    // Today's quota counts the guest's one image (and any earlier in this run), out of 10.
    expect(guest[7]).toBe(`${before.today.images + 1} / 10`)
    expect(guest[8]).toBe("10 images/day")
    expect(await row("team-admin").locator("td").nth(1).textContent()).toBe("all")
    const admin = Number(await row("team-admin").locator("td").nth(3).textContent())
    expect(admin).toBeGreaterThanOrEqual(2)
    await expect.poll(() => page.locator("#recent-body").textContent()).toContain("guest")
    const text = await page.content()
    for (const key of [E2E_ADMIN_KEY, E2E_GUEST_KEY]) expect(text).not.toContain(key)
    await shot(page, "panel-keys", "#keys")
    expect(errors).toEqual([])
    await context.close()
  })

  it("a user key sees only its own key and the playground, and generates with the models it may use", async () => {
    const { context, page, errors } = await open()
    await connect(page, E2E_GUEST_KEY)
    await page.locator('#keys-body tr[data-key="guest"]').waitFor()
    expect(await page.locator("#keys-body tr").count()).toBe(1)
    for (const panel of ["#status", "#models", "#usage"]) expect(await page.locator(panel).isVisible(), panel).toBe(false)
    for (const link of ["Status", "Models", "Usage"]) {
      expect(await page.getByRole("navigation").getByRole("link", { name: link, exact: true }).isVisible()).toBe(false)
    }
    expect(await page.getByText("This is a user key").isVisible()).toBe(true)
    // Its window is chosen in the Keys panel.
    await page.locator("#keys").getByRole("button", { name: "7 days" }).click()
    await expect.poll(() => page.locator("#keys-window").textContent()).toBe("7 days")
    expect(await page.locator("#keys").getByRole("button", { name: "7 days" }).getAttribute("aria-pressed")).toBe("true")
    const options = await playground(page).getByLabel("Model", { exact: true }).locator("option").allTextContents()
    expect(options).toEqual(["local/preview"])
    expect(await page.locator("#snippets").textContent()).toContain('model="local/preview"')
    await playground(page).getByRole("button", { name: "Generate" }).click()
    await playground(page).locator("#play-images img").first().waitFor({ timeout: 30_000 })
    await shot(page, "user-key-view")
    expect(errors).toEqual([])
    await context.close()
  })

  it("probes an upstream on demand", async () => {
    const { context, page } = await open()
    await connect(page)
    await page.locator("#probe-model option").first().waitFor({ state: "attached" })
    await page.getByLabel("Probe model").selectOption("local/preview")
    await page.getByRole("button", { name: "Probe now" }).click()
    await expect.poll(() => page.locator("#probe-result").textContent()).toMatch(/^OK in \d+ ms/)
    await expect.poll(() => page.locator("#upstreams").textContent()).toMatch(/last: 200/)
    await context.close()
  })

  it("renders in Chinese for a Chinese browser, and switches to English and back", async () => {
    const { context, page, errors } = await open({ locale: "zh-CN" })
    expect(await page.evaluate("document.documentElement.lang")).toBe("zh-CN")
    expect(await page.locator("#status-title").textContent()).toBe("状态")
    await page.getByLabel("API 密钥").fill(DEVELOPMENT_API_KEY)
    await page.getByRole("button", { name: "连接" }).click()
    await page.locator("#upstreams .card").first().waitFor()
    expect(await page.locator("#usage-title").textContent()).toBe("用量统计")
    expect(await page.locator("#config").textContent()).toContain("最多 3 次尝试")
    await shot(page, "zh-cn")
    await page.getByRole("button", { name: "English" }).click()
    expect(await page.locator("#status-title").textContent()).toBe("Status")
    expect(await page.evaluate("document.documentElement.lang")).toBe("en")
    await shot(page, "en")
    await page.getByRole("button", { name: "中文" }).click()
    expect(await page.locator("#playground-title").textContent()).toBe("试用")
    expect(errors).toEqual([])
    await context.close()
  })

  it("fits a phone-sized screen and is usable from the keyboard", async () => {
    const { context, page } = await open({ width: 375, height: 740 })
    // Keyboard only: skip link, then into the key field, type, Enter.
    await page.keyboard.press("Tab")
    expect(await page.evaluate("document.activeElement?.textContent")).toBe("Skip to content")
    await page.keyboard.press("Tab")
    expect(await page.evaluate("document.activeElement?.id")).toBe("api-key")
    await page.keyboard.type(DEVELOPMENT_API_KEY)
    await page.keyboard.press("Enter")
    await page.locator("#upstreams .card").first().waitFor()
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth")
    expect(overflow).toBeLessThanOrEqual(0)
    await shot(page, "phone")
    await context.close()
  })

  it("keeps the key across reloads only when 'remember' is ticked", async () => {
    const { context, page } = await open()
    await page.getByLabel("Remember on this device").check()
    await connect(page)
    await page.locator("#upstreams .card").first().waitFor()
    expect(await page.evaluate(() => localStorage.getItem("ai-image-gateway.key"))).toBe(DEVELOPMENT_API_KEY)
    const second = await context.newPage()
    await second.goto(`${base()}/`)
    await second.locator("#upstreams .card").first().waitFor()
    await second.getByRole("button", { name: "Forget" }).click()
    expect(await second.evaluate(() => localStorage.getItem("ai-image-gateway.key"))).toBeNull()
    expect(await second.locator("#upstreams").isVisible()).toBe(false)
    await context.close()
  })

  it("serves the cockpit under a CSP that runs no inline or foreign script, and frames nowhere", async () => {
    const headers = (await fetch(`${base()}/`)).headers
    const csp = headers.get("content-security-policy") ?? ""
    expect(csp).toContain("default-src 'self'")
    expect(csp).toContain("script-src 'self';")
    expect(csp).toContain("connect-src 'self';")
    expect(csp).toContain("frame-ancestors 'none'")
    expect(csp).not.toContain("unsafe-inline")
    expect(headers.get("x-content-type-options")).toBe("nosniff")
    expect(headers.get("x-frame-options")).toBe("DENY")
    // The browser enforces it: an injected inline script does not run, the page's own scripts do.
    const { context, page, errors } = await open()
    await page.waitForLoadState("load")
    await page.getByLabel("API key").waitFor()
    const ran = await page.evaluate(
      `(() => { const script = document.createElement("script"); script.textContent = "window.injected = true"; document.head.append(script); return window.injected ?? false })()`
    )
    expect(ran).toBe(false)
    expect(errors.filter((error) => !error.includes("Content Security Policy"))).toEqual([])
    await context.close()
  })

  it("serves /docs, which points at /openapi.json and says so when the viewer's CDN is unreachable", async () => {
    const { context, page } = await open()
    // Unreachable whether this machine is online or not.
    await context.route("https://cdn.jsdelivr.net/**", (route) => route.abort())
    await page.goto(`${base()}/docs`)
    await expect.poll(() => page.locator("#fallback").count(), { timeout: 15_000 }).toBe(1)
    expect(await page.locator("#fallback a[href='/openapi.json']").count()).toBe(1)
    const csp = (await fetch(`${base()}/docs`)).headers.get("content-security-policy") ?? ""
    expect(csp).toContain("connect-src 'self';")
    expect(csp).toMatch(/script-src 'self' https:\/\/cdn\.jsdelivr\.net;/)
    const openapi = (await (await fetch(`${base()}/openapi.json`)).json()) as { paths: Record<string, unknown> }
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(["/v1/gateway/status", "/v1/gateway/stats"]))
    await context.close()
  })

  it("/docs runs only the Scalar file it pins: a CDN that serves anything else is refused by the browser", async () => {
    const { context, page } = await open()
    let served = ""
    await context.route("https://cdn.jsdelivr.net/**", (route) => {
      served = route.request().url()
      return route.fulfill({
        status: 200,
        contentType: "application/javascript",
        headers: { "access-control-allow-origin": "*" },
        body: "window.Scalar = { createApiReference: () => { document.body.dataset.tampered = 'ran' } }"
      })
    })
    await page.goto(`${base()}/docs`)
    await expect.poll(() => page.locator("#fallback").count(), { timeout: 15_000 }).toBe(1)
    expect(await page.evaluate("document.body.dataset.tampered ?? null")).toBeNull()
    expect(served).toMatch(/@scalar\/api-reference@\d+\.\d+\.\d+\//)
    await context.close()
  })
})
