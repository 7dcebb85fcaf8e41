"""Drives the OpenAI-compatible endpoints with the official `openai` package, as a user's script would.

Usage: python openai_client.py BASE_URL   (prints one JSON object with what it saw)
"""

import json
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="not-needed", max_retries=0, timeout=120)
seen = {"models": [model.id for model in client.models.list().data]}

question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
completion = client.chat.completions.create(model="local", messages=question, max_tokens=12, temperature=0)
seen["completion"] = {
    "content": completion.choices[0].message.content,
    "finish_reason": completion.choices[0].finish_reason,
    "usage": completion.usage.model_dump(),
    "object": completion.object,
}

pieces, finish = [], None
for chunk in client.chat.completions.create(model="local", messages=question, max_tokens=12, temperature=0, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.choices and chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
seen["stream"] = {"content": "".join(pieces), "chunks": len(pieces), "finish_reason": finish}

embedded = client.embeddings.create(model="all-MiniLM-L6-v2", input=["a cat sleeps", "a kitten naps", "stock prices fell"])
vectors = [item.embedding for item in embedded.data]
dot = lambda a, b: sum(x * y for x, y in zip(a, b))
seen["embeddings"] = {"count": len(vectors), "dimension": len(vectors[0]), "similar": dot(vectors[0], vectors[1]), "different": dot(vectors[0], vectors[2])}

try:
    client.chat.completions.create(model="local", messages=[])
    seen["empty_messages"] = "accepted"
except openai.BadRequestError as error:
    seen["empty_messages"] = {"status": error.status_code, "message": error.body.get("message") if isinstance(error.body, dict) else str(error.body)}

print(json.dumps(seen))
