// The Client set-up panel: copyable snippets for the SDKs and chat UIs.
import { $, copyButton, h, state, t } from "./core.js"

/** `editor`: a model that edits images, when this gateway has one: the snippets then show an edit too. */
export const snippetsFor = (origin, model, editor) => {
  const base = `${origin}/v1`
  const pythonEdit = editor
    ? `\n\nedited = client.images.edit(model="${editor}", prompt="make it night", image=open("fox.png", "rb"))\nopen("night.png", "wb").write(base64.b64decode(edited.data[0].b64_json))`
    : ""
  const nodeEdit = editor
    ? `\nawait writeFile("fox.png", Buffer.from(result.data[0].b64_json, "base64"))\n\nconst edited = await client.images.edit({ model: "${editor}", prompt: "make it night", image: new File([await readFile("fox.png")], "fox.png", { type: "image/png" }) })\nconsole.log(edited.data[0].b64_json.length)`
    : ""
  return [
    [
      "snippetCurl",
      `curl ${base}/images/generations \\\n  -H "Authorization: Bearer YOUR_API_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '{"model": "${model}", "prompt": "a red fox in snow", "n": 1, "size": "1024x1024"}'`
    ],
    [
      "snippetPython",
      `from openai import OpenAI\nimport base64\n\nclient = OpenAI(base_url="${base}", api_key="YOUR_API_KEY")\nresult = client.images.generate(model="${model}", prompt="a red fox in snow")\nopen("fox.png", "wb").write(base64.b64decode(result.data[0].b64_json))${pythonEdit}`
    ],
    [
      "snippetNode",
      `import OpenAI from "openai"\n${editor ? 'import { readFile, writeFile } from "node:fs/promises"\n' : ""}\nconst client = new OpenAI({ baseURL: "${base}", apiKey: "YOUR_API_KEY" })\nconst result = await client.images.generate({ model: "${model}", prompt: "a red fox in snow" })\nconsole.log(result.data[0].b64_json.length)${nodeEdit}`
    ],
    [
      "snippetAiSdk",
      `import { createOpenAICompatible } from "@ai-sdk/openai-compatible"\nimport { streamText } from "ai"\n\nconst gateway = createOpenAICompatible({ name: "gateway", baseURL: "${base}", apiKey: "YOUR_API_KEY" })\nconst result = streamText({ model: gateway.chatModel("${model}"), prompt: "a red fox in snow" })\nfor await (const text of result.textStream) process.stdout.write(text)`
    ],
    ["snippetLobe", t("lobeText", { base })],
    ["snippetNext", `BASE_URL=${origin}\nOPENAI_API_KEY=YOUR_API_KEY\nCUSTOM_MODELS=+${model},+dall-e-3`],
    ["snippetOpenWebUI", t("openWebUIText", { base, model })]
  ]
}

/** Set-up steps written as sentences wrap; code keeps its lines. */
export const PROSE = new Set(["snippetLobe", "snippetOpenWebUI"])

export const renderSnippets = () => {
  // A user key's snippets name a model it may use.
  const model = state.status?.config.defaultModel ?? state.userModels[0] ?? "replicate/flux-schnell"
  const editor = state.status?.models.find((entry) => entry.edits)?.id
  $("#snippets").replaceChildren(
    ...snippetsFor(location.origin, model, editor).map(([name, text]) =>
      h(
        "div",
        { class: "snippet" },
        h(
          "h3",
          {},
          t(name),
          copyButton(() => text)
        ),
        h("pre", { class: PROSE.has(name) ? "prose" : undefined }, h("code", {}, text))
      )
    )
  )
}
