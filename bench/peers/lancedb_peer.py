"""The LanceDB peer of bench-scale: the same chunks, vectors and queries, LanceDB's own full-text index,
vector search (an IVF_HNSW_SQ index from 20k vectors, as our graph threshold; flat below) and hybrid search
(its default RRF reranker). Prints one JSON object: version, build_rate, and p50/p99 ms per query kind.

Usage: python lancedb_peer.py EXPORT_DIR   (written by bench-scale)
"""
import json
import sys
import tempfile
import time

import lancedb
import numpy as np
import pyarrow as pa

DIMENSION = 384
GRAPH_THRESHOLD = 20_000


def percentiles(samples):
    samples = sorted(samples)[10:] or sorted(samples)
    pick = lambda fraction: samples[min(int(len(samples) * fraction), len(samples) - 1)] * 1000.0
    return {"p50": pick(0.5), "p99": pick(0.99)}


def main(export):
    chunks = [json.loads(line) for line in open(f"{export}/chunks.jsonl", encoding="utf-8")]
    vectors = np.fromfile(f"{export}/vectors.f32", dtype="<f4").reshape(len(chunks), DIMENSION)
    queries = json.load(open(f"{export}/queries.json", encoding="utf-8"))
    query_vectors = np.fromfile(f"{export}/query_vectors.f32", dtype="<f4").reshape(len(queries), DIMENSION)

    with tempfile.TemporaryDirectory() as folder:
        db = lancedb.connect(folder)
        started = time.perf_counter()
        data = pa.table({
            "id": [chunk["id"] for chunk in chunks],
            "text": [chunk["text"] for chunk in chunks],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), type=pa.float32()), DIMENSION),
        })
        table = db.create_table("chunks", data=data)
        table.create_fts_index("text")
        vector_index = "flat"
        if len(chunks) >= GRAPH_THRESHOLD:
            table.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_HNSW_SQ")
            vector_index = "IVF_HNSW_SQ"
        build_rate = len(chunks) / (time.perf_counter() - started)

        def timed(run):
            samples = []
            for position in range(len(queries)):
                begin = time.perf_counter()
                run(position)
                samples.append(time.perf_counter() - begin)
            return percentiles(samples)

        fts = timed(lambda i: table.search(queries[i], query_type="fts").limit(10).to_list())
        vector = timed(lambda i: table.search(query_vectors[i]).metric("cosine").limit(10).to_list())
        hybrid = timed(
            lambda i: table.search(query_type="hybrid").vector(query_vectors[i]).text(queries[i]).limit(10).to_list()
        )
    print(json.dumps({
        "version": lancedb.__version__,
        "vector_index": vector_index,
        "build_rate": build_rate,
        "fts": fts,
        "vector": vector,
        "hybrid": hybrid,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
