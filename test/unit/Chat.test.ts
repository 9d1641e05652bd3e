import { assert, describe, it } from "@effect/vitest"
import { type ChatMessage, chatPrompt } from "../../src/domain/Chat.ts"
import { InvalidRequest } from "../../src/domain/Errors.ts"

const user = (content: ChatMessage["content"]): ChatMessage => ({ role: "user", content })
const ok = (messages: ReadonlyArray<ChatMessage>) => {
  const result = chatPrompt(messages)
  if (result instanceof InvalidRequest) throw new Error(result.message)
  return result
}
const rejected = (messages: ReadonlyArray<ChatMessage>) => {
  const result = chatPrompt(messages)
  assert.instanceOf(result, InvalidRequest)
  return result as InvalidRequest
}

describe("chatPrompt", () => {
  it("takes the last user message, string or text parts joined", () => {
    const messages: Array<ChatMessage> = [
      { role: "system", content: "be brief" },
      user("first idea"),
      { role: "assistant", content: "![image 1](data:...)" },
      user([
        { type: "text", text: "a fox" },
        { type: "image_url", image_url: { url: "https://example.test/ref.png", detail: "auto" } },
        { type: "text", text: "in snow" }
      ])
    ]
    const prompt = ok(messages)
    assert.strictEqual(prompt.prompt, "a fox\nin snow")
    assert.deepStrictEqual(prompt.referenceImages, ["https://example.test/ref.png"])
    assert.isUndefined(prompt.n)
  })

  it("reads trailing flags and removes them from the prompt", () => {
    assert.deepInclude(ok([user("a fox --ar 16:9")]), { prompt: "a fox", size: "1024x576" })
    assert.deepInclude(ok([user("a fox --size 1792x1024 --n 3")]), { prompt: "a fox", size: "1792x1024", n: 3 })
    assert.deepInclude(ok([user("a fox --ar 2:3 --size 512x512")]), { prompt: "a fox", size: "512x512" })
    assert.deepInclude(ok([user("a fox --N 2 ")]), { prompt: "a fox", n: 2 })
    // flags in the middle are part of the prompt
    assert.deepInclude(ok([user("use --n 2 wisely, a fox")]), { prompt: "use --n 2 wisely, a fox", n: undefined })
  })

  it("rejects bad flag values, naming the flag", () => {
    for (const [text, flag] of [
      ["a fox --n 0", "--n 0"],
      ["a fox --n 11", "--n 11"],
      ["a fox --n two", "--n two"],
      ["a fox --size big", "--size big"],
      ["a fox --ar 16-9", "--ar 16-9"],
      ["a fox --ar 0:1", "--ar 0:1"]
    ] as const) {
      const error = rejected([user(text)])
      assert.strictEqual(error.param, "messages")
      assert.include(error.message, flag)
    }
  })

  it("rejects a conversation with no usable user text", () => {
    for (const messages of [
      [{ role: "system", content: "hi" }],
      [user(null)],
      [user("   ")],
      [user("--n 2")],
      [user([{ type: "image_url", image_url: { url: "https://example.test/a.png" } }])]
    ] as Array<Array<ChatMessage>>) {
      assert.strictEqual(rejected(messages).param, "messages")
    }
  })

  // Before: an unanchored regular expression ran over the whole text before any length check, and 900,000
  // spaces kept the isolate busy for seconds (past this test's 5 s limit). Now the text is bounded first
  // and flags are read backwards token by token.
  it("refuses an over-long text before parsing it, and parses any text of the allowed length in linear time", () => {
    const spaces = " ".repeat(900_000)
    assert.include(rejected([user(`a fox${spaces}--n 2`)]).message, "longer than 32000")
    assert.include(rejected([user(`${spaces}a fox`)]).message, "longer than 32000")
    const padded = `a fox${" ".repeat(31_000)}--n 2`
    assert.deepInclude(ok([user(padded)]), { prompt: "a fox", n: 2 })
    const tokens = `${"-- ".repeat(10_000)}a fox --size 512x512`
    assert.deepInclude(ok([user(tokens)]), { size: "512x512" })
  })
})
