// Smoke test with the official `openai` npm client: streamed chat and embeddings against ONE.
// Usage: node openai_smoke.mjs <base_url>   Prints one JSON line with what it saw; exits non-zero on error.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "dev", maxRetries: 0 });
const stream = await client.chat.completions.create({
  model: "tiny-chat",
  messages: [{ role: "user", content: "Hello from node" }],
  max_tokens: 12,
  stream: true,
});
let text = "";
let receipt = null;
let chunks = 0;
for await (const chunk of stream) {
  chunks += 1;
  for (const choice of chunk.choices) text += choice.delta?.content ?? "";
  if (chunk.receipt) receipt = chunk.receipt;
}
const embedding = await client.embeddings.create({ model: "all-minilm-l6-v2", input: ["one", "two"] });
console.log(JSON.stringify({
  chunks,
  text_length: text.length,
  receipt_hash: receipt?.hash ?? null,
  receipt_kind: receipt?.kind ?? null,
  vectors: embedding.data.length,
  dims: embedding.data[0].embedding.length,
}));
