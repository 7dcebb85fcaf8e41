#!/usr/bin/env python3
"""Validate the zh-facts BEIR-style test collection (standard library only).

Usage: python3 check.py [directory]   (defaults to the directory of this file)
Exits with status 1 and lists the problems if any check fails.
"""
import collections
import json
import os
import re
import sys

HERE = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
errors = []


def err(msg):
    errors.append(msg)


def load_jsonl(name, keys):
    rows, ids = [], set()
    path = os.path.join(HERE, name)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                err(f"{name}:{n}: empty line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                err(f"{name}:{n}: invalid JSON ({e})")
                continue
            if not isinstance(obj, dict):
                err(f"{name}:{n}: not a JSON object")
                continue
            for k in keys:
                if not isinstance(obj.get(k), str) or not obj[k].strip():
                    err(f"{name}:{n}: missing or empty key {k!r}")
            i = obj.get("_id")
            if i in ids:
                err(f"{name}:{n}: duplicate _id {i!r}")
            ids.add(i)
            rows.append(obj)
    return rows


docs = load_jsonl("corpus.jsonl", ["_id", "title", "text"])
queries = load_jsonl("queries.jsonl", ["_id", "text"])
doc_ids = {d["_id"] for d in docs}
qmap = {q["_id"]: q.get("text", "") for q in queries}

# corpus
if len(docs) < 300:
    err(f"corpus has {len(docs)} documents, need >= 300")
for d in docs:
    n_cjk = len(CJK.findall(d.get("text", "")))
    if n_cjk < 50:
        err(f"{d['_id']}: text has only {n_cjk} CJK characters")

# queries: q001-q150 Chinese, q151-q200 English
expected = [f"q{i:03d}" for i in range(1, 201)]
if sorted(qmap) != expected:
    err(f"query ids are not exactly q001..q200 (got {len(qmap)} ids)")
n_zh = n_en = 0
for i in range(1, 201):
    qid = f"q{i:03d}"
    text = qmap.get(qid, "")
    if i <= 150:
        if CJK.search(text):
            n_zh += 1
        else:
            err(f"{qid}: Chinese query without CJK characters")
    else:
        letters = [c for c in text if c.isalpha()]
        ascii_letters = [c for c in letters if c.isascii()]
        if letters and len(ascii_letters) / len(letters) >= 0.8:
            n_en += 1
        else:
            err(f"{qid}: English query is not mostly ASCII letters")
if n_zh != 150:
    err(f"{n_zh} Chinese queries, expected 150")
if n_en != 50:
    err(f"{n_en} English queries, expected 50")

# qrels
grades = collections.Counter()
per_query = collections.defaultdict(dict)
with open(os.path.join(HERE, "qrels.tsv"), encoding="utf-8") as f:
    header = f.readline().rstrip("\n")
    if header != "query-id\tcorpus-id\tscore":
        err(f"qrels.tsv: bad header {header!r}")
    for n, line in enumerate(f, 2):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3:
            err(f"qrels.tsv:{n}: expected 3 tab-separated fields")
            continue
        qid, did, score = parts
        if qid not in qmap:
            err(f"qrels.tsv:{n}: unknown query {qid}")
        if did not in doc_ids:
            err(f"qrels.tsv:{n}: unknown document {did}")
        if score not in ("1", "2"):
            err(f"qrels.tsv:{n}: score must be 1 or 2, got {score!r}")
            continue
        if did in per_query[qid]:
            err(f"qrels.tsv:{n}: duplicate pair {qid} {did}")
        per_query[qid][did] = int(score)
        grades[int(score)] += 1
for qid in qmap:
    g = per_query.get(qid, {})
    n2 = sum(1 for s in g.values() if s == 2)
    n1 = sum(1 for s in g.values() if s == 1)
    if n2 != 1:
        err(f"{qid}: {n2} grade-2 documents, expected exactly 1")
    if n1 > 3:
        err(f"{qid}: {n1} grade-1 documents, expected at most 3")

answer_docs = {d for g in per_query.values() for d, s in g.items() if s == 2}
print(f"documents:            {len(docs)}")
print(f"queries:              {len(queries)} ({n_zh} Chinese, {n_en} English)")
print(f"qrels lines:          {grades[2] + grades[1]} (grade 2: {grades[2]}, grade 1: {grades[1]})")
print(f"distinct answer docs: {len(answer_docs)}")
if errors:
    print(f"\nFAILED: {len(errors)} problem(s)")
    for e in errors[:50]:
        print("  " + e)
    sys.exit(1)
print("OK")
